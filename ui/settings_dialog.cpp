// SettingsDialog: editors built from Settings' descriptors, live apply, reload progress.
#include "settings_dialog.h"

#include "engine_worker.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDialogButtonBox>
#include <QDoubleSpinBox>
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

namespace {

QString notYet()
{
    return SettingsDialog::tr("not available yet: the engine does not support this");
}

}  // namespace

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

    auto *engineBox = new QGroupBox(tr("Engine (changes reload the model)"), this);
    auto *ef = new QFormLayout(engineBox);
    auto *backend = qobject_cast<QComboBox *>(makeEditor(K::Backend));
    ef->addRow(tr("Backend"), backend);
    ef->addRow(tr("GPU layers"), unavailable(makeEditor(K::GpuLayers), notYet()));
    ef->addRow(tr("Threads (0: all cores)"), makeEditor(K::Threads));
    ef->addRow(tr("Context length"), makeEditor(K::ContextLength));
    ef->addRow(tr("Batch size"), makeEditor(K::BatchSize));
    ef->addRow(tr("KV cache type"), unavailable(makeEditor(K::KvCacheType), notYet()));
    auto *weights = new QComboBox(engineBox);
    weights->addItems({tr("as stored in the file"), QStringLiteral("Q8_0"), QStringLiteral("Q4_K")});
    ef->addRow(tr("Weight format"), unavailable(weights, notYet()));
    auto *speculative = new QComboBox(engineBox);
    speculative->addItems({tr("off"), tr("draft model"), tr("n-gram lookup")});
    ef->addRow(tr("Speculative decoding"), unavailable(speculative, notYet()));
    auto *prefix = new QCheckBox(tr("Reuse the common prompt prefix"), engineBox);
    prefix->setChecked(true);
    ef->addRow(tr("Prefix cache"), unavailable(prefix, tr("always on: it cannot be turned off yet")));
    auto *batching = new QCheckBox(tr("Serve several chats at once"), engineBox);
    ef->addRow(tr("Batching"), unavailable(batching, notYet()));
    // CUDA is not in the app's engine yet.
    if (backend) {
        const int cuda = backend->findText(QStringLiteral("cuda"));
        if (cuda >= 0)
            backend->setItemData(cuda, 0, Qt::UserRole - 1);  // disables the item
        backend->setToolTip(tr("CUDA: not available yet in the app"));
    }
    columns->addWidget(engineBox);

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
    statusRow->addWidget(m_status, 1);
    statusRow->addWidget(m_progress);
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
        combo->addItems(d.choices);
        connect(combo, &QComboBox::currentTextChanged, this, [this, key](const QString &t) { apply(key, t); });
        w = combo;
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
        combo->setCurrentText(value.toString());
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
    if (loading) {
        m_progress->setRange(0, 0);
        m_status->setText(tr("Applying the engine settings (the chat is kept)…"));
    } else {
        m_status->setText(m_engine->isModelLoaded() ? tr("Settings applied.") : QString());
    }
}
