// QuantLabDialog: variant picker, evaluation options, progress, results table.
#include "quant_lab_dialog.h"

#include <QApplication>
#include <QClipboard>
#include <QComboBox>
#include <QDialogButtonBox>
#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QListWidget>
#include <QLocale>
#include <QPlainTextEdit>
#include <QProgressBar>
#include <QPushButton>
#include <QSpinBox>
#include <QTableWidget>
#include <QToolButton>
#include <QVBoxLayout>

namespace {

constexpr int kIdRole = Qt::UserRole + 1;

struct Builtin {
    const char *id;
    const char *label;
};
// Most precise first: the default reference is the first one checked.
const Builtin kBuiltins[] = {
    {"f16", "F16"},          {"q8_0", "Q8_0"},  {"file", "as in the file"}, {"q6_k", "Q6_K"},
    {"q5_k", "Q5_K"},        {"q4_k", "Q4_K"},  {"q4_0", "Q4_0"},           {"q3_k", "Q3_K"},
    {"q2_k", "Q2_K"},        {"gptq-q4_0", "GPTQ Q4_0"}, {"gptq-q4_k", "GPTQ Q4_K"},
    {"rtn-q4_0", "importance-weighted RTN Q4_0"},
};

QString cell(double v, int decimals)
{
    return QLocale().toString(v, 'f', decimals);
}

}  // namespace

QuantLabDialog::QuantLabDialog(const QString &outputDir, QWidget *parent)
    : QDialog(parent)
    , m_lab(new QuantLab(this))
    , m_outputDir(outputDir)
{
    // ui/resources.qrc lives in a static library: register it (the sample text).
    static const bool resources = [] {
        Q_INIT_RESOURCE(resources);
        return true;
    }();
    Q_UNUSED(resources);
    setObjectName(QStringLiteral("quantLabDialog"));
    setWindowTitle(tr("Quantization lab"));
    auto *layout = new QVBoxLayout(this);

    auto *sourceRow = new QHBoxLayout;
    m_source = new QLineEdit(this);
    m_source->setObjectName(QStringLiteral("sourceModel"));
    m_source->setAccessibleName(tr("Source model"));
    m_source->setPlaceholderText(tr("the GGUF model to quantize and evaluate"));
    auto *browse = new QToolButton(this);
    browse->setText(tr("…"));
    browse->setToolTip(tr("Choose the source model"));
    connect(browse, &QToolButton::clicked, this, [this] {
        auto *d = new QFileDialog(this, tr("Source model"), QString(), tr("GGUF models (*.gguf)"));
        d->setFileMode(QFileDialog::ExistingFile);
        d->setAttribute(Qt::WA_DeleteOnClose);
        connect(d, &QFileDialog::fileSelected, this, &QuantLabDialog::setSourceModel);
        d->open();
    });
    sourceRow->addWidget(new QLabel(tr("Model"), this));
    sourceRow->addWidget(m_source, 1);
    sourceRow->addWidget(browse);
    layout->addLayout(sourceRow);

    auto *columns = new QHBoxLayout;
    layout->addLayout(columns);

    auto *variantsBox = new QGroupBox(tr("Variants"), this);
    auto *vl = new QVBoxLayout(variantsBox);
    m_variants = new QListWidget(variantsBox);
    m_variants->setObjectName(QStringLiteral("variants"));
    m_variants->setAccessibleName(tr("Variants to compare"));
    for (const Builtin &b : kBuiltins) {
        auto *item = new QListWidgetItem(tr(b.label), m_variants);
        item->setData(kIdRole, QString::fromLatin1(b.id));
        item->setFlags(item->flags() | Qt::ItemIsUserCheckable);
        item->setCheckState(Qt::Unchecked);
    }
    vl->addWidget(m_variants, 1);
    auto *addFile = new QPushButton(tr("Add a GGUF file…"), variantsBox);
    connect(addFile, &QPushButton::clicked, this, [this] {
        auto *d = new QFileDialog(this, tr("Add a variant"), QString(), tr("GGUF models (*.gguf)"));
        d->setFileMode(QFileDialog::ExistingFile);
        d->setAttribute(Qt::WA_DeleteOnClose);
        connect(d, &QFileDialog::fileSelected, this, &QuantLabDialog::addFileVariant);
        d->open();
    });
    vl->addWidget(addFile);
    auto *vf = new QFormLayout;
    m_reference = new QComboBox(variantsBox);
    m_reference->setObjectName(QStringLiteral("reference"));
    m_reference->setToolTip(tr("KL-divergence and top-token agreement are measured against this variant: "
                               "pick the most precise one."));
    vf->addRow(tr("Reference"), m_reference);
    m_group = new QSpinBox(variantsBox);
    m_group->setRange(32, 128);
    m_group->setSingleStep(32);
    m_group->setValue(32);
    m_group->setToolTip(tr("GPTQ group size (Q4_0: 32, 64 or 128; Q4_K uses its 32-element sub-blocks)"));
    vf->addRow(tr("GPTQ group"), m_group);
    vl->addLayout(vf);
    columns->addWidget(variantsBox);
    connect(m_variants, &QListWidget::itemChanged, this, [this] {
        updateReferenceChoices();
        updateButtons();
    });

    auto *evalBox = new QGroupBox(tr("Evaluation text"), this);
    auto *el = new QVBoxLayout(evalBox);
    m_text = new QPlainTextEdit(evalBox);
    m_text->setObjectName(QStringLiteral("evalText"));
    m_text->setAccessibleName(tr("Evaluation text"));
    QFile sample(QStringLiteral(":/text/perplexity_sample.txt"));
    if (sample.open(QIODevice::ReadOnly))
        m_text->setPlainText(QString::fromUtf8(sample.readAll()));
    el->addWidget(m_text, 1);
    auto *ef = new QFormLayout;
    m_ctx = new QSpinBox(evalBox);
    m_ctx->setRange(32, 8192);
    m_ctx->setValue(512);
    m_ctx->setSingleStep(128);
    ef->addRow(tr("Chunk length (tokens)"), m_ctx);
    m_chunks = new QSpinBox(evalBox);
    m_chunks->setRange(0, 10000);
    m_chunks->setSpecialValueText(tr("all"));
    ef->addRow(tr("Chunks"), m_chunks);
    auto *loadText = new QPushButton(tr("Load a text file…"), evalBox);
    connect(loadText, &QPushButton::clicked, this, [this] {
        auto *d = new QFileDialog(this, tr("Evaluation text"), QString(), tr("Text (*.txt);;All files (*)"));
        d->setFileMode(QFileDialog::ExistingFile);
        d->setAttribute(Qt::WA_DeleteOnClose);
        connect(d, &QFileDialog::fileSelected, this, [this](const QString &f) {
            QFile file(f);
            if (file.open(QIODevice::ReadOnly))
                m_text->setPlainText(QString::fromUtf8(file.readAll()));
        });
        d->open();
    });
    ef->addRow(loadText);
    el->addLayout(ef);
    columns->addWidget(evalBox, 1);

    auto *runRow = new QHBoxLayout;
    m_run = new QPushButton(tr("Write && evaluate"), this);
    m_run->setObjectName(QStringLiteral("runEvaluation"));
    m_write = new QPushButton(tr("Write files only"), this);
    m_write->setObjectName(QStringLiteral("writeVariants"));
    m_cancel = new QPushButton(tr("Cancel"), this);
    m_cancel->setObjectName(QStringLiteral("cancelLab"));
    m_progress = new QProgressBar(this);
    m_progress->setRange(0, 100);
    m_progress->hide();
    m_status = new QLabel(this);
    m_status->setObjectName(QStringLiteral("labStatus"));
    m_status->setWordWrap(true);
    runRow->addWidget(m_run);
    runRow->addWidget(m_write);
    runRow->addWidget(m_cancel);
    runRow->addWidget(m_progress, 1);
    layout->addLayout(runRow);
    layout->addWidget(m_status);
    connect(m_run, &QPushButton::clicked, this, &QuantLabDialog::startEvaluation);
    connect(m_write, &QPushButton::clicked, this, &QuantLabDialog::startWriting);
    connect(m_cancel, &QPushButton::clicked, this, &QuantLabDialog::cancel);

    m_table = new QTableWidget(0, 11, this);
    m_table->setObjectName(QStringLiteral("results"));
    m_table->setAccessibleName(tr("Results"));
    m_table->setHorizontalHeaderLabels({tr("Variant"), tr("Size"), tr("Memory"), tr("PPL"), tr("KLD mean"), tr("KLD p99"),
                                        tr("Same top %"), tr("Δp correct"), tr("Prefill tok/s"), tr("Decode tok/s"),
                                        tr("Scored")});
    m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);
    m_table->setSelectionBehavior(QAbstractItemView::SelectRows);
    m_table->setSelectionMode(QAbstractItemView::SingleSelection);
    m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::ResizeToContents);
    m_table->setMinimumHeight(160);
    layout->addWidget(m_table, 1);

    auto *buttons = new QDialogButtonBox(QDialogButtonBox::Close, this);
    m_copy = buttons->addButton(tr("Copy as Markdown"), QDialogButtonBox::ActionRole);
    m_load = buttons->addButton(tr("Load in chat"), QDialogButtonBox::ActionRole);
    m_load->setObjectName(QStringLiteral("loadVariant"));
    connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
    connect(m_copy, &QPushButton::clicked, this, [this] { QApplication::clipboard()->setText(m_markdown); });
    connect(m_load, &QPushButton::clicked, this, [this] {
        const int row = m_table->currentRow();
        if (row >= 0 && row < m_rows.size())
            emit loadRequested(m_rows[row].path);
    });
    connect(m_table, &QTableWidget::itemSelectionChanged, this, &QuantLabDialog::updateButtons);
    layout->addWidget(buttons);

    connect(m_lab, &QuantLab::progress, this, [this](double f, const QString &stage) {
        m_progress->show();
        if (f < 0) {
            m_progress->setRange(0, 0);
        } else {
            m_progress->setRange(0, 100);
            m_progress->setValue(qRound(100 * f));
        }
        m_status->setText(stage);
    });
    connect(m_lab, &QuantLab::variantWritten, this,
            [this](const QString &name, const QString &path, quint64 bytes, const QString &plan) {
                m_status->setText(tr("Wrote %1 (%2, %3): %4")
                                      .arg(name, plan, QLocale().formattedDataSize(qint64(bytes)), path));
            });
    connect(m_lab, &QuantLab::finished, this, [this](const QList<QuantLabRow> &rows, const QString &markdown) {
        m_progress->hide();
        showRows(rows, markdown);
        m_status->setText(tr("Done: %n variant(s).", nullptr, int(rows.size())));
        updateButtons();
    });
    connect(m_lab, &QuantLab::failed, this, [this](const QString &message, bool) {
        m_progress->hide();
        m_status->setText(message);
        updateButtons();
    });

    resize(900, 700);
    updateReferenceChoices();
    updateButtons();
}

void QuantLabDialog::setSourceModel(const QString &path)
{
    m_source->setText(path);
    updateButtons();
}

QString QuantLabDialog::sourceModel() const
{
    return m_source->text();
}

void QuantLabDialog::setVariantChecked(const QString &id, bool checked)
{
    for (int i = 0; i < m_variants->count(); ++i)
        if (m_variants->item(i)->data(kIdRole).toString() == id)
            m_variants->item(i)->setCheckState(checked ? Qt::Checked : Qt::Unchecked);
}

QStringList QuantLabDialog::checkedVariants() const
{
    QStringList ids;
    for (int i = 0; i < m_variants->count(); ++i)
        if (m_variants->item(i)->checkState() == Qt::Checked)
            ids.append(m_variants->item(i)->data(kIdRole).toString());
    return ids;
}

void QuantLabDialog::setReference(const QString &id)
{
    const int i = m_reference->findData(id);
    if (i >= 0)
        m_reference->setCurrentIndex(i);
}

void QuantLabDialog::setEvalText(const QString &text)
{
    m_text->setPlainText(text);
}

void QuantLabDialog::setContextLength(int n)
{
    m_ctx->setValue(n);
}

void QuantLabDialog::setMaxChunks(int n)
{
    m_chunks->setValue(n);
}

QString QuantLabDialog::variantName(const QString &id) const
{
    for (int i = 0; i < m_variants->count(); ++i)
        if (m_variants->item(i)->data(kIdRole).toString() == id)
            return m_variants->item(i)->text();
    return id;
}

void QuantLabDialog::addFileVariant(const QString &path)
{
    const QString id = QStringLiteral("path:") + path;
    auto *item = new QListWidgetItem(QFileInfo(path).fileName(), m_variants);
    item->setData(kIdRole, id);
    item->setToolTip(path);
    item->setFlags(item->flags() | Qt::ItemIsUserCheckable);
    item->setCheckState(Qt::Checked);
}

void QuantLabDialog::updateReferenceChoices()
{
    const QString current = m_reference->currentData().toString();
    const QSignalBlocker block(m_reference);
    m_reference->clear();
    for (const QString &id : checkedVariants())
        m_reference->addItem(variantName(id), id);
    const int keep = m_reference->findData(current);
    m_reference->setCurrentIndex(keep >= 0 ? keep : 0);
}

void QuantLabDialog::updateButtons()
{
    const bool running = m_lab->isRunning();
    const bool ready = !running && !m_source->text().isEmpty() && !checkedVariants().isEmpty();
    m_run->setEnabled(ready);
    m_write->setEnabled(ready);
    m_cancel->setEnabled(running);
    m_copy->setEnabled(!m_markdown.isEmpty());
    m_load->setEnabled(m_table->currentRow() >= 0 && !running);
}

QuantLabRequest QuantLabDialog::request(bool evaluate) const
{
    QuantLabRequest r;
    r.sourcePath = m_source->text();
    r.outputDir = m_outputDir;
    r.evalText = m_text->toPlainText();
    r.contextLength = m_ctx->value();
    r.maxChunks = m_chunks->value();
    r.evaluate = evaluate;
    QStringList ids = checkedVariants();
    const QString reference = m_reference->currentData().toString();
    if (ids.removeOne(reference))
        ids.prepend(reference);
    for (const QString &id : std::as_const(ids)) {
        QuantVariantSpec v;
        v.name = variantName(id);
        if (id.startsWith(QLatin1String("path:"))) {
            v.path = id.mid(5);
        } else if (id == QLatin1String("file")) {
            v.path = r.sourcePath;  // the file itself, as it is
        } else if (id.startsWith(QLatin1String("gptq-")) || id.startsWith(QLatin1String("rtn-"))) {
            v.format = QStringLiteral("file");  // the rest stays as in the file
            v.gptqType = id.section(QLatin1Char('-'), 1);
            v.gptq = id.startsWith(QLatin1String("gptq-"));
            v.weightedRtn = !v.gptq;
            v.gptqGroup = m_group->value();
            if (v.gptq && v.gptqType == QLatin1String("q4_0"))
                v.name += QStringLiteral(" g%1").arg(v.gptqGroup);
        } else {
            v.format = id;
        }
        r.variants.append(v);
    }
    return r;
}

void QuantLabDialog::startEvaluation()
{
    start(true);
}

void QuantLabDialog::startWriting()
{
    start(false);
}

void QuantLabDialog::start(bool evaluate)
{
    const QuantLabRequest r = request(evaluate);
    if (r.sourcePath.isEmpty() || r.variants.isEmpty()) {
        m_status->setText(tr("Choose a model and at least one variant."));
        return;
    }
    if (evaluate && r.evalText.trimmed().isEmpty()) {
        m_status->setText(tr("The evaluation needs a text."));
        return;
    }
    if (!m_lab->start(r))
        return;
    m_progress->setRange(0, 100);
    m_progress->setValue(0);
    m_progress->show();
    m_status->setText(tr("Starting…"));
    updateButtons();
}

void QuantLabDialog::cancel()
{
    m_lab->cancel();
    m_status->setText(tr("Cancelling…"));
}

void QuantLabDialog::showRows(const QList<QuantLabRow> &rows, const QString &markdown)
{
    m_rows = rows;
    m_markdown = markdown;
    m_table->setRowCount(int(rows.size()));
    const QLocale locale;
    for (int i = 0; i < rows.size(); ++i) {
        const QuantLabRow &r = rows[i];
        const bool evaluated = r.scored > 0;
        const QStringList cells = {
            r.reference ? tr("%1 (reference)").arg(r.name) : r.name,
            locale.formattedDataSize(qint64(r.fileBytes)),
            evaluated ? locale.formattedDataSize(qint64(r.memoryBytes)) : QString(),
            evaluated ? cell(r.ppl, 3) : QString(),
            evaluated ? cell(r.kldMean, 5) : QString(),
            evaluated ? cell(r.kldP99, 4) : QString(),
            evaluated ? cell(r.sameTopPct, 2) : QString(),
            evaluated ? cell(100.0 * r.dpMean, 3) + QStringLiteral(" %") : QString(),
            evaluated ? cell(r.prefillTokS, 1) : QString(),
            evaluated ? cell(r.decodeTokS, 1) : QString(),
            evaluated ? QString::number(r.scored) : QString(),
        };
        for (int c = 0; c < cells.size(); ++c) {
            auto *item = new QTableWidgetItem(cells[c]);
            if (c > 0)
                item->setTextAlignment(Qt::AlignRight | Qt::AlignVCenter);
            item->setToolTip(r.path);
            m_table->setItem(i, c, item);
        }
    }
}
