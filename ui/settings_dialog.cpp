// SettingsDialog: editors built from Settings' descriptors, live apply, reload progress.
#include "settings_dialog.h"

#include "engine_worker.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDialogButtonBox>
#include <QDoubleSpinBox>
#include <QFileDialog>
#include <QFutureWatcher>
#include <QLineEdit>
#include <QLocale>
#include <QToolButton>
#include <QtConcurrent>
#include <QFormLayout>
#include <QGroupBox>
#include <QLabel>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QSpinBox>
#include <QTimer>
#include <QVBoxLayout>

#include <limits>

SettingsDialog::SettingsDialog(Settings *settings, EngineWorker *engine, QWidget *parent)
    : QDialog(parent)
    , m_settings(settings)
    , m_engine(engine)
{
    using K = Settings::Key;
    setObjectName(QStringLiteral("settingsDialog"));
    setWindowTitle(tr("Settings"));
    auto *layout = new QVBoxLayout(this);
    auto *columns = new QHBoxLayout;
    layout->addLayout(columns);

    auto *engineBox = new QGroupBox(tr("Engine (changes reload the model; the chat is kept)"), this);
    auto *ef = new QFormLayout(engineBox);
    m_backend = qobject_cast<QComboBox *>(makeEditor(K::Backend));
    ef->addRow(tr("Backend"), m_backend);
    auto *gpuLayers = qobject_cast<QSpinBox *>(makeEditor(K::GpuLayers));
    gpuLayers->setSpecialValueText(tr("all"));
    gpuLayers->setToolTip(tr("Layers on the GPU (CUDA backend): \"all\", or the first N layers on the GPU "
                             "and the others on the CPU, for models larger than the GPU's memory. "
                             "A model that does not fit is refused with the number of layers that would."));
    ef->addRow(tr("GPU layers"), gpuLayers);
    auto *precise = qobject_cast<QCheckBox *>(makeEditor(K::PreciseDecode));
    precise->setText(tr("Precise decode (16-bit activations)"));
    precise->setToolTip(tr("CUDA backend: decode with activations in two 8-bit planes (about 16 bits) instead of one, "
                           "so the logits match the exact model as closely as the prompt pass does; about 10% "
                           "slower on an 8B model, 3-12% on smaller ones. Replies then run on the one-sequence engine."));
    ef->addRow(tr("GPU decode"), precise);
    auto gpuOnlyForCuda = [this, gpuLayers, precise] {
        gpuLayers->setEnabled(m_settings->backend() == QLatin1String("cuda"));
        precise->setEnabled(m_settings->backend() == QLatin1String("cuda"));
    };
    gpuOnlyForCuda();
    connect(m_settings, &Settings::changed, gpuLayers, [gpuOnlyForCuda](Settings::Key key) {
        if (key == Settings::Key::Backend)
            gpuOnlyForCuda();
    });
    ef->addRow(tr("Threads (0: all cores)"), makeEditor(K::Threads));
    ef->addRow(tr("Context length"), makeEditor(K::ContextLength));
    ef->addRow(tr("Batch size"), makeEditor(K::BatchSize));
    QWidget *kv = makeEditor(K::KvCacheType);
    kv->setToolTip(tr("Type of the keys and values kept for the context. Q8_0 halves its memory; "
                      "an engine without quantized KV support refuses it with a message."));
    ef->addRow(tr("KV cache type"), kv);
    // Batching is live (applies to the next reply, no reload); with partial
    // GPU offload or speculation the note says why replies bypass it.
    auto *batching = qobject_cast<QCheckBox *>(makeEditor(K::Batching));
    batching->setText(tr("Continuous batching with a paged KV cache and prefix tree (next reply)"));
    auto *batchingNote = new QLabel(engineBox);
    batchingNote->setObjectName(QStringLiteral("batchingNote"));
    batchingNote->setWordWrap(true);
    batchingNote->setForegroundRole(QPalette::PlaceholderText);
    ef->addRow(tr("Batching"), batching);
    ef->addRow(batchingNote);
    auto batchingAvailability = [this, batching, batchingNote] {
        const QString why = Settings::batchingUnavailableReason(m_settings->backend(),
                                                                m_settings->value(Settings::Key::SpecMethod).toString(),
                                                                m_settings->value(Settings::Key::GpuLayers).toInt(),
                                                                m_settings->value(Settings::Key::PreciseDecode).toBool());
        const QString tip = why.isEmpty() ? tr("Replies run on the continuous-batching engine: every shared prompt "
                                               "prefix (earlier turns, other chats, edited branches) is reused.")
                                          : why;
        batching->setToolTip(tip);
        batching->setAccessibleDescription(tip);
        batchingNote->setText(why);
        batchingNote->setVisible(!why.isEmpty());
    };
    batchingAvailability();
    connect(m_settings, &Settings::changed, batching, [batchingAvailability](Settings::Key key) {
        if (key == Settings::Key::Backend || key == Settings::Key::SpecMethod || key == Settings::Key::GpuLayers ||
            key == Settings::Key::PreciseDecode)
            batchingAvailability();
    });
    columns->addWidget(engineBox);
    // The CUDA item is enabled once the probe (off the GUI thread) finds a device.
    setCudaAvailable(false, tr("looking for a CUDA device…"));
    auto *probe = new QFutureWatcher<BackendReport>(this);
    connect(probe, &QFutureWatcher<BackendReport>::finished, this, [this, probe] {
        const BackendReport r = probe->result();
        setCudaAvailable(r.cudaAvailable, r.cudaAvailable ? r.cudaDevices.join(QLatin1Char('\n')) : r.cudaMessage);
        // KV cache types this build of the engine does not have: shown, disabled, with the reason.
        if (auto *kv = qobject_cast<QComboBox *>(editor(Settings::Key::KvCacheType)))
            for (int i = 0; i < kv->count(); ++i)
                if (!r.kvCacheTypes.contains(kv->itemData(i).toString())) {
                    kv->setItemData(i, 0, Qt::UserRole - 1);
                    kv->setItemData(i, tr("not available yet: this build of the engine keeps the KV cache in F16"),
                                    Qt::ToolTipRole);
                }
        probe->deleteLater();
    });
    probe->setFuture(QtConcurrent::run(&EngineWorker::probeBackends));

    auto *weightsBox = new QGroupBox(tr("Weight format (requantize on load)"), this);
    weightsBox->setObjectName(QStringLiteral("weightFormatBox"));
    auto *wf = new QFormLayout(weightsBox);
    wf->addRow(tr("Whole model"), makeEditor(K::WeightFormat));
    wf->addRow(tr("Attention"), makeEditor(K::WeightFormatAttention));
    wf->addRow(tr("Feed-forward"), makeEditor(K::WeightFormatFeedForward));
    wf->addRow(tr("Embeddings"), makeEditor(K::WeightFormatEmbedding));
    wf->addRow(tr("Output"), makeEditor(K::WeightFormatOutput));
    m_weightsInfo = new QLabel(weightsBox);
    m_weightsInfo->setObjectName(QStringLiteral("weightsInfo"));
    m_weightsInfo->setWordWrap(true);
    m_weightsInfo->setTextInteractionFlags(Qt::TextSelectableByMouse);
    wf->addRow(m_weightsInfo);
    weightsBox->setToolTip(tr("The model is requantized in the background into a cached copy "
                              "(in the data folder), then loaded. Rows that a block size cannot take fall back "
                              "like llama.cpp does."));

    auto *decodingBox = new QGroupBox(tr("Decoding (applies to the next reply)"), this);
    auto *df = new QFormLayout(decodingBox);
    df->addRow(tr("Speculative decoding"), makeEditor(K::SpecMethod));
    df->addRow(tr("Longest draft"), makeEditor(K::SpecDraftMax));
    df->addRow(tr("N-gram size"), makeEditor(K::SpecNgram));
    df->addRow(tr("Branches / candidates"), makeEditor(K::SpecBranches));
    df->addRow(tr("Adaptive"), makeEditor(K::SpecAdaptive));
    auto *draftRow = new QHBoxLayout;
    auto *draft = qobject_cast<QLineEdit *>(makeEditor(K::SpecDraftModel));
    draft->setPlaceholderText(tr("draft model GGUF (method \"draft\")"));
    auto *browse = new QToolButton(decodingBox);
    browse->setText(tr("…"));
    browse->setToolTip(tr("Choose the draft model file"));
    connect(browse, &QToolButton::clicked, this, [this] {
        auto *dialog = new QFileDialog(this, tr("Draft model"), QString(), tr("GGUF models (*.gguf)"));
        dialog->setFileMode(QFileDialog::ExistingFile);
        dialog->setAttribute(Qt::WA_DeleteOnClose);
        connect(dialog, &QFileDialog::fileSelected, this,
                [this](const QString &f) { m_settings->setValue(Settings::Key::SpecDraftModel, f); });
        dialog->open();
    });
    draftRow->addWidget(draft, 1);
    draftRow->addWidget(browse);
    df->addRow(tr("Draft model"), draftRow);
    df->addRow(tr("Prefix cache"), makeEditor(K::PrefixCache));
    qobject_cast<QCheckBox *>(editor(K::PrefixCache))->setText(tr("Reuse the common prompt prefix"));
    qobject_cast<QCheckBox *>(editor(K::SpecAdaptive))->setText(tr("Adapt the draft length; off when slower"));

    auto *engineColumn = new QVBoxLayout;
    engineColumn->addWidget(weightsBox);
    engineColumn->addWidget(decodingBox);
    columns->addLayout(engineColumn);

    auto *samplingBox = new QGroupBox(tr("Sampling (applies to the next reply)"), this);
    auto *sf = new QFormLayout(samplingBox);
    sf->addRow(tr("Temperature (0: greedy)"), makeEditor(K::Temperature));
    sf->addRow(tr("Top-k (0: off)"), makeEditor(K::TopK));
    sf->addRow(tr("Top-p"), makeEditor(K::TopP));
    sf->addRow(tr("Min-p"), makeEditor(K::MinP));
    sf->addRow(tr("Repeat penalty"), makeEditor(K::RepeatPenalty));
    sf->addRow(tr("Seed (0: random)"), makeEditor(K::Seed));
    sf->addRow(tr("Max tokens per reply"), makeEditor(K::MaxTokens));
    sf->addRow(tr("Alternatives per token"), makeEditor(K::TopLogprobs));
    columns->addWidget(samplingBox);

    auto *chatBox = new QGroupBox(tr("New conversations"), this);
    auto *cf = new QFormLayout(chatBox);
    cf->addRow(tr("Default system prompt"), makeEditor(K::SystemPrompt));
    layout->addWidget(chatBox);

    auto *statusRow = new QHBoxLayout;
    m_status = new QLabel(this);
    m_status->setObjectName(QStringLiteral("reloadStatus"));
    m_progress = new QProgressBar(this);
    m_progress->setRange(0, 0);
    m_progress->setMaximumWidth(160);
    m_progress->hide();
    m_cancel = new QToolButton(this);
    m_cancel->setObjectName(QStringLiteral("cancelReload"));
    m_cancel->setText(tr("Cancel"));
    m_cancel->setToolTip(tr("Stop applying the engine settings (the model stays as it was)"));
    m_cancel->hide();
    connect(m_cancel, &QToolButton::clicked, m_engine, qOverload<>(&EngineWorker::cancelLoad));
    statusRow->addWidget(m_status, 1);
    statusRow->addWidget(m_progress);
    statusRow->addWidget(m_cancel);
    layout->addLayout(statusRow);

    auto *buttons = new QDialogButtonBox(QDialogButtonBox::Close | QDialogButtonBox::RestoreDefaults, this);
    layout->addWidget(buttons);
    connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
    connect(buttons->button(QDialogButtonBox::RestoreDefaults), &QPushButton::clicked, m_settings,
            &Settings::resetToDefaults);

    for (const Settings::Descriptor &d : Settings::descriptors())
        if (m_editors.contains(d.key))
            showValue(d.key, m_settings->value(d.key));
    connect(m_settings, &Settings::changed, this,
            [this](Settings::Key key, const QVariant &value, bool) { showValue(key, value); });
    connect(m_engine, &EngineWorker::modelLoadStarted, this, &SettingsDialog::updateReloadStatus);
    connect(m_engine, &EngineWorker::modelLoaded, this, &SettingsDialog::updateReloadStatus);
    connect(m_engine, &EngineWorker::modelLoaded, this, &SettingsDialog::showModelInfo);
    showModelInfo();
    connect(m_engine, &EngineWorker::modelLoadFailed, this, [this](quint64, const QString &message) {
        updateReloadStatus();
        m_status->setText(message);
    });
    connect(m_engine, &EngineWorker::modelLoadProgress, this, [this](quint64, double p) {
        m_progress->setRange(0, 100);
        m_progress->setValue(int(p * 100));
    });
}

QWidget *SettingsDialog::unavailable(QWidget *editor, const QString &why)
{
    editor->setEnabled(false);
    editor->setToolTip(why);
    editor->setWhatsThis(why);
    editor->setAccessibleDescription(why);
    return editor;
}

QWidget *SettingsDialog::makeEditor(Settings::Key key)
{
    const Settings::Descriptor &d = Settings::descriptor(key);
    QWidget *w = nullptr;
    if (!d.choices.isEmpty()) {
        auto *combo = new QComboBox(this);
        for (const QString &c : d.choices)
            combo->addItem(choiceLabel(c), c);
        connect(combo, &QComboBox::currentIndexChanged, this,
                [this, key, combo](int i) { apply(key, combo->itemData(i).toString()); });
        w = combo;
    } else if (d.defaultValue.typeId() == QMetaType::Bool) {
        auto *check = new QCheckBox(this);
        connect(check, &QCheckBox::toggled, this, [this, key](bool on) { apply(key, on); });
        w = check;
    } else if (key == Settings::Key::SpecDraftModel) {
        auto *line = new QLineEdit(this);
        connect(line, &QLineEdit::editingFinished, this, [this, key, line] { apply(key, line->text()); });
        w = line;
    } else if (d.defaultValue.typeId() == QMetaType::Double) {
        auto *spin = new QDoubleSpinBox(this);
        spin->setDecimals(2);
        spin->setSingleStep(0.05);
        spin->setRange(d.minimum.toDouble(), d.maximum.toDouble());
        spin->setKeyboardTracking(false);
        connect(spin, &QDoubleSpinBox::valueChanged, this, [this, key](double v) { apply(key, v); });
        w = spin;
    } else if (d.defaultValue.typeId() == QMetaType::Int || d.defaultValue.typeId() == QMetaType::LongLong) {
        auto *spin = new QSpinBox(this);
        spin->setRange(d.minimum.isValid() ? int(std::min<qint64>(d.minimum.toLongLong(), INT_MAX)) : 0,
                       d.maximum.isValid() ? int(std::min<qint64>(d.maximum.toLongLong(), INT_MAX)) : INT_MAX);
        spin->setKeyboardTracking(false);
        if (key == Settings::Key::ContextLength || key == Settings::Key::BatchSize)
            spin->setSingleStep(256);
        connect(spin, &QSpinBox::valueChanged, this, [this, key](int v) { apply(key, v); });
        w = spin;
    } else {
        auto *text = new QPlainTextEdit(this);
        text->setFixedHeight(text->fontMetrics().lineSpacing() * 3 + 12);
        auto *timer = new QTimer(text);
        timer->setSingleShot(true);
        timer->setInterval(500);
        connect(text, &QPlainTextEdit::textChanged, timer, [timer, this] {
            if (!m_updating)
                timer->start();
        });
        connect(timer, &QTimer::timeout, this, [this, key, text] { apply(key, text->toPlainText()); });
        w = text;
    }
    w->setObjectName(d.name);
    w->setAccessibleName(d.name);
    m_editors.insert(key, w);
    return w;
}

void SettingsDialog::showValue(Settings::Key key, const QVariant &value)
{
    QWidget *w = m_editors.value(key);
    if (!w)
        return;
    m_updating = true;
    const QSignalBlocker block(w);
    if (auto *combo = qobject_cast<QComboBox *>(w))
        combo->setCurrentIndex(combo->findData(value.toString()));
    else if (auto *check = qobject_cast<QCheckBox *>(w))
        check->setChecked(value.toBool());
    else if (auto *line = qobject_cast<QLineEdit *>(w))
        line->setText(value.toString());
    else if (auto *dspin = qobject_cast<QDoubleSpinBox *>(w))
        dspin->setValue(value.toDouble());
    else if (auto *spin = qobject_cast<QSpinBox *>(w))
        spin->setValue(value.toInt());
    else if (auto *text = qobject_cast<QPlainTextEdit *>(w); text && text->toPlainText() != value.toString())
        text->setPlainText(value.toString());
    m_updating = false;
}

void SettingsDialog::apply(Settings::Key key, const QVariant &value)
{
    if (m_updating)
        return;
    QVariant v = value;
    if (Settings::descriptor(key).defaultValue.typeId() == QMetaType::LongLong)
        v = QVariant(qint64(value.toLongLong()));
    m_settings->setValue(key, v);
    // The controller (connected first) has started any reload by now.
    updateReloadStatus();
}

void SettingsDialog::updateReloadStatus()
{
    const bool loading = m_engine->isLoading();
    m_progress->setVisible(loading);
    m_cancel->setVisible(loading);
    if (loading) {
        m_progress->setRange(0, 0);
        m_status->setText(m_settings->engineConfig().requantizes()
                              ? tr("Requantizing and loading the model (the chat is kept)…")
                              : tr("Applying the engine settings (the chat is kept)…"));
    } else {
        m_status->setText(m_engine->isModelLoaded() ? tr("Settings applied.") : QString());
    }
}

QString SettingsDialog::choiceLabel(const QString &choice)
{
    if (choice == QLatin1String("file"))
        return tr("as in the file");
    if (choice == QLatin1String("base"))
        return tr("as the whole model");
    if (choice == QLatin1String("cpu"))
        return tr("CPU");
    if (choice == QLatin1String("cuda"))
        return tr("CUDA (GPU)");
    if (choice == QLatin1String("none"))
        return tr("off");
    if (choice == QLatin1String("draft"))
        return tr("draft model");
    if (choice == QLatin1String("lookup"))
        return tr("prompt lookup (n-grams)");
    if (choice == QLatin1String("lookahead"))
        return tr("lookahead (Jacobi)");
    if (choice == QLatin1String("selfdraft"))
        return tr("self-draft (skipped layers)");
    return choice.toUpper();
}

void SettingsDialog::setCudaAvailable(bool available, const QString &why)
{
    const int cuda = m_backend->findData(QStringLiteral("cuda"));
    if (cuda < 0)
        return;
    // Qt::UserRole - 1 is the item's flags in QStandardItemModel: 0 disables it.
    if (available)
        m_backend->setItemData(cuda, QVariant(), Qt::UserRole - 1);
    else
        m_backend->setItemData(cuda, 0, Qt::UserRole - 1);
    m_backend->setItemData(cuda, why, Qt::ToolTipRole);
    m_backend->setToolTip(available ? tr("CUDA: %1").arg(why) : tr("CUDA: not available: %1").arg(why));
    m_cudaAvailable = available;
}

void SettingsDialog::showModelInfo()
{
    const ModelInfo info = m_engine->modelInfo();
    if (!m_engine->isModelLoaded() || info.path.isEmpty()) {
        m_weightsInfo->setText(tr("No model loaded."));
        return;
    }
    const QLocale locale;
    m_weightsInfo->setText(tr("Loaded: %1 on %2\nWeights: %3 (%4 of tensor data, file %5)\nKV cache: %6 (%7)")
                               .arg(info.description, info.backend.toUpper(), info.weightFormat,
                                    locale.formattedDataSize(qint64(info.weightBytes)),
                                    locale.formattedDataSize(qint64(info.fileBytes)),
                                    locale.formattedDataSize(qint64(info.kvBytes)), info.kvCacheType.toUpper()));
    m_weightsInfo->setToolTip(info.loadedFile);
}
