// ModelLibraryDialog: table of model entries, worker-thread GGUF reads,
// memory warnings and the download section.
#include "model_library_dialog.h"

#include "chat_store.h"
#include "model_downloader.h"

#include <QDialogButtonBox>
#include <QDir>
#include <QFileDialog>
#include <QFileInfo>
#include <QFutureWatcher>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QLineEdit>
#include <QMessageBox>
#include <QProgressBar>
#include <QRegularExpression>
#include <QStyle>
#include <QPushButton>
#include <QTreeWidget>
#include <QVBoxLayout>

namespace {
enum Column { ColName, ColArch, ColParams, ColQuant, ColContext, ColSize, ColTemplate, ColLicense, ColCount };
}

ModelLibraryDialog::ModelLibraryDialog(ChatStore *store, const QString &downloadDir, QWidget *parent)
    : QDialog(parent)
    , m_store(store)
    , m_downloadDir(downloadDir)
    , m_downloader(new ModelDownloader(this))
{
    setObjectName(QStringLiteral("modelLibrary"));
    setWindowTitle(tr("Model library"));
    resize(900, 520);
    auto *layout = new QVBoxLayout(this);

    m_table = new QTreeWidget(this);
    m_table->setObjectName(QStringLiteral("modelTable"));
    m_table->setAccessibleName(tr("Models"));
    m_table->setRootIsDecorated(false);
    m_table->setAlternatingRowColors(true);
    m_table->setHeaderLabels({tr("File"), tr("Architecture"), tr("Parameters"), tr("Quantization"), tr("Context"),
                              tr("Size"), tr("Chat template"), tr("License")});
    m_table->header()->setSectionResizeMode(QHeaderView::ResizeToContents);
    m_table->header()->setSectionResizeMode(ColName, QHeaderView::Stretch);
    m_table->header()->setStretchLastSection(false);
    layout->addWidget(m_table, 1);

    m_details = new QLabel(this);
    m_details->setObjectName(QStringLiteral("modelDetails"));
    m_details->setWordWrap(true);
    m_details->setTextInteractionFlags(Qt::TextSelectableByMouse);
    layout->addWidget(m_details);
    m_warning = new QLabel(this);
    m_warning->setObjectName(QStringLiteral("memoryWarning"));
    m_warning->setWordWrap(true);
    m_warning->hide();
    layout->addWidget(m_warning);

    auto *buttons = new QHBoxLayout;
    auto *addFiles = new QPushButton(tr("Add files…"), this);
    auto *addFolder = new QPushButton(tr("Add folder…"), this);
    m_remove = new QPushButton(tr("Remove"), this);
    m_remove->setToolTip(tr("Remove from the library (the file stays on disk)"));
    m_load = new QPushButton(tr("Load"), this);
    m_load->setObjectName(QStringLiteral("loadModelButton"));
    m_load->setDefault(true);
    buttons->addWidget(addFiles);
    buttons->addWidget(addFolder);
    buttons->addWidget(m_remove);
    buttons->addStretch(1);
    buttons->addWidget(m_load);
    layout->addLayout(buttons);

    auto *download = new QGroupBox(tr("Download from Hugging Face"), this);
    auto *dl = new QVBoxLayout(download);
    auto *urlRow = new QHBoxLayout;
    m_url = new QLineEdit(download);
    m_url->setObjectName(QStringLiteral("downloadUrl"));
    m_url->setAccessibleName(tr("Model file URL"));
    m_url->setPlaceholderText(QStringLiteral("https://huggingface.co/<org>/<repo>/resolve/main/<file>.gguf"));
    m_sha = new QLineEdit(download);
    m_sha->setObjectName(QStringLiteral("downloadSha"));
    m_sha->setAccessibleName(tr("Expected SHA-256 (optional)"));
    m_sha->setPlaceholderText(tr("SHA-256 (optional)"));
    m_sha->setMaximumWidth(220);
    m_download = new QPushButton(tr("Download"), download);
    m_download->setObjectName(QStringLiteral("downloadButton"));
    m_cancel = new QPushButton(tr("Cancel"), download);
    m_cancel->setObjectName(QStringLiteral("cancelDownload"));
    m_cancel->setEnabled(false);
    urlRow->addWidget(m_url, 1);
    urlRow->addWidget(m_sha);
    urlRow->addWidget(m_download);
    urlRow->addWidget(m_cancel);
    dl->addLayout(urlRow);
    m_progress = new QProgressBar(download);
    m_progress->setObjectName(QStringLiteral("downloadProgress"));
    m_progress->setAccessibleName(tr("Download progress"));
    m_progress->hide();
    dl->addWidget(m_progress);
    m_downloadStatus = new QLabel(download);
    m_downloadStatus->setObjectName(QStringLiteral("downloadStatus"));
    m_downloadStatus->setWordWrap(true);
    dl->addWidget(m_downloadStatus);
    layout->addWidget(download);

    auto *close = new QDialogButtonBox(QDialogButtonBox::Close, this);
    layout->addWidget(close);

    connect(close, &QDialogButtonBox::rejected, this, &QDialog::reject);
    connect(addFiles, &QPushButton::clicked, this, [this] {
        auto *dialog = new QFileDialog(this, tr("Add models"), QDir::homePath(), tr("GGUF models (*.gguf)"));
        dialog->setFileMode(QFileDialog::ExistingFiles);
        dialog->setAttribute(Qt::WA_DeleteOnClose);
        connect(dialog, &QFileDialog::filesSelected, this, &ModelLibraryDialog::addPaths);
        dialog->open();
    });
    connect(addFolder, &QPushButton::clicked, this, [this] {
        auto *dialog = new QFileDialog(this, tr("Add a folder of models"), QDir::homePath());
        dialog->setFileMode(QFileDialog::Directory);
        dialog->setOption(QFileDialog::ShowDirsOnly);
        dialog->setAttribute(Qt::WA_DeleteOnClose);
        connect(dialog, &QFileDialog::filesSelected, this, &ModelLibraryDialog::addPaths);
        dialog->open();
    });
    connect(m_remove, &QPushButton::clicked, this, &ModelLibraryDialog::removeSelected);
    connect(m_load, &QPushButton::clicked, this, &ModelLibraryDialog::loadSelected);
    connect(m_table, &QTreeWidget::itemDoubleClicked, this, &ModelLibraryDialog::loadSelected);
    connect(m_table, &QTreeWidget::itemSelectionChanged, this, &ModelLibraryDialog::updateDetails);
    connect(m_download, &QPushButton::clicked, this, &ModelLibraryDialog::startDownloadFromFields);
    connect(m_cancel, &QPushButton::clicked, this, &ModelLibraryDialog::cancelDownload);

    connect(m_downloader, &ModelDownloader::progress, this, [this](qint64 received, qint64 total) {
        m_progress->show();
        if (total > 0) {
            m_progress->setRange(0, 1000);
            m_progress->setValue(int(1000.0 * double(received) / double(total)));
        } else {
            m_progress->setRange(0, 0);
        }
        m_downloadStatus->setText(total > 0 ? tr("%1 of %2").arg(formatBytes(received), formatBytes(total))
                                            : formatBytes(received));
    });
    connect(m_downloader, &ModelDownloader::stateChanged, this, [this](ModelDownloader::State s) {
        const bool busy = s == ModelDownloader::State::Downloading || s == ModelDownloader::State::Verifying;
        m_download->setEnabled(!busy);
        m_cancel->setEnabled(busy);
        if (s == ModelDownloader::State::Verifying)
            m_downloadStatus->setText(tr("Checking the file…"));
    });
    connect(m_downloader, &ModelDownloader::finished, this, [this](const QString &path) {
        m_progress->hide();
        m_downloadStatus->setText(tr("Downloaded %1.").arg(QFileInfo(path).fileName()));
        addPaths({path});
    });
    connect(m_downloader, &ModelDownloader::failed, this, [this](const QString &message) {
        m_progress->hide();
        m_downloadStatus->setText(message);
        showError(tr("Download failed"), message);
    });
    connect(m_downloader, &ModelDownloader::cancelled, this, [this] {
        m_progress->hide();
        m_downloadStatus->setText(tr("Cancelled. Download again to resume."));
    });

    connect(m_store, &ChatStore::modelEntriesListed, this, [this](quint64, const QList<ModelEntry> &entries) {
        m_models.clear();
        m_entryIds.clear();
        for (const ModelEntry &e : entries) {
            m_models.append(GgufSummary::fromJson(e.path, e.metadata));
            m_entryIds.insert(e.path, e.id);
        }
        refreshTable();
    });
    connect(m_store, &ChatStore::modelEntryAdded, this, [this](quint64, const ModelEntry &e) {
        emit modelAdded(e.path);
        refresh();
    });
    connect(m_store, &ChatStore::modelEntryRemoved, this, [this] { refresh(); });
    refresh();
}

void ModelLibraryDialog::refresh()
{
    m_store->listModelEntries();
}

qint64 ModelLibraryDialog::availableMemory() const
{
    return m_memoryOverride != -2 ? m_memoryOverride : availableMemoryBytes();
}

void ModelLibraryDialog::refreshTable()
{
    const QString selected = selectedPath();
    const qint64 available = availableMemory();
    const QSignalBlocker block(m_table);
    m_table->clear();
    for (const GgufSummary &m : std::as_const(m_models)) {
        auto *item = new QTreeWidgetItem(m_table);
        item->setText(ColName, QFileInfo(m.path).fileName());
        item->setToolTip(ColName, m.path);
        item->setData(ColName, Qt::UserRole, m.path);
        item->setText(ColArch, m.architecture);
        item->setText(ColParams, formatParameters(m.parameters));
        item->setText(ColQuant, m.quantization);
        item->setText(ColContext, m.contextLength > 0 ? QString::number(m.contextLength) : QString());
        item->setText(ColSize, formatBytes(m.fileSize));
        item->setText(ColTemplate, m.hasChatTemplate ? tr("yes") : tr("no (built-in)"));
        item->setText(ColLicense, m.license);
        const QString warning = memoryWarning(m.fileSize, available);
        if (!warning.isEmpty()) {
            item->setIcon(ColName, style()->standardIcon(QStyle::SP_MessageBoxWarning));
            item->setToolTip(ColSize, warning);
        }
        if (!QFileInfo::exists(m.path))
            item->setForeground(ColName, palette().brush(QPalette::Disabled, QPalette::Text));
        if (m.path == selected)
            item->setSelected(true);
    }
    updateDetails();
}

void ModelLibraryDialog::updateDetails()
{
    const qint64 available = availableMemory();
    const QString path = selectedPath();
    m_load->setEnabled(!path.isEmpty());
    m_remove->setEnabled(!path.isEmpty());
    QString details;
    QString warning;
    for (const GgufSummary &m : std::as_const(m_models))
        if (m.path == path) {
            details = tr("%1 — %2 %3 parameters, %4, trained context %5, %6")
                          .arg(m.name.isEmpty() ? QFileInfo(m.path).fileName() : m.name, m.architecture,
                               formatParameters(m.parameters), m.quantization)
                          .arg(m.contextLength)
                          .arg(m.path);
            warning = memoryWarning(m.fileSize, available);
            if (!QFileInfo::exists(m.path))
                warning = tr("The file is missing.");
        }
    m_details->setText(details);
    m_warning->setText(warning);
    m_warning->setVisible(!warning.isEmpty());
}

QString ModelLibraryDialog::selectedPath() const
{
    const QList<QTreeWidgetItem *> items = m_table->selectedItems();
    return items.isEmpty() ? QString() : items.first()->data(ColName, Qt::UserRole).toString();
}

void ModelLibraryDialog::addPaths(const QStringList &paths)
{
    for (const QString &p : paths) {
        const QFileInfo fi(p);
        if (fi.isDir()) {
            const QStringList files = findGgufFiles(p);
            if (files.isEmpty())
                showError(tr("No models found"), tr("%1 holds no .gguf files.").arg(p));
            for (const QString &f : files)
                readFile(f);
        } else {
            readFile(fi.absoluteFilePath());
        }
    }
}

void ModelLibraryDialog::readFile(const QString &path)
{
    ++m_pending;
    auto *watcher = new QFutureWatcher<GgufSummary>(this);
    connect(watcher, &QFutureWatcher<GgufSummary>::finished, this, [this, watcher] {
        watcher->deleteLater();
        --m_pending;
        const GgufSummary s = watcher->result();
        if (!s.ok) {
            emit modelRejected(s.path, s.error);
            showError(tr("Not a usable model"), tr("%1 cannot be added:\n%2").arg(QFileInfo(s.path).fileName(), s.error));
            return;
        }
        m_store->addModelEntry(s.path, s.toJson());
    });
    watcher->setFuture(readGgufSummaryAsync(path));
}

void ModelLibraryDialog::removeSelected()
{
    const QString path = selectedPath();
    if (m_entryIds.contains(path))
        m_store->removeModelEntry(m_entryIds.value(path));
}

void ModelLibraryDialog::loadSelected()
{
    const QString path = selectedPath();
    if (path.isEmpty())
        return;
    if (!QFileInfo::exists(path)) {
        showError(tr("Model missing"), tr("%1 no longer exists.").arg(path));
        return;
    }
    emit loadRequested(path);
}

void ModelLibraryDialog::startDownloadFromFields()
{
    QUrl url;
    QString fileName;
    QString error;
    if (!ModelDownloader::parseHuggingFaceUrl(m_url->text(), &url, &fileName, &error)) {
        m_downloadStatus->setText(error);
        showError(tr("Download"), error);
        return;
    }
    const QByteArray sha = m_sha->text().trimmed().toLatin1();
    if (!sha.isEmpty() && !QRegularExpression(QStringLiteral("^[0-9a-fA-F]{64}$")).match(QString::fromLatin1(sha)).hasMatch()) {
        showError(tr("Download"), tr("A SHA-256 is 64 hexadecimal digits."));
        return;
    }
    startDownload(url, fileName, -1, sha);
}

void ModelLibraryDialog::startDownload(const QUrl &url, const QString &fileName, qint64 expectedSize,
                                       const QByteArray &expectedSha256)
{
    if (!QDir().mkpath(m_downloadDir)) {
        showError(tr("Download"), tr("Cannot create %1.").arg(m_downloadDir));
        return;
    }
    ModelDownloader::Request r;
    r.url = url;
    r.destination = QDir(m_downloadDir).filePath(fileName);
    r.expectedSize = expectedSize;
    r.expectedSha256 = expectedSha256;
    m_downloadStatus->setText(QFileInfo::exists(r.destination + QStringLiteral(".part"))
                                  ? tr("Resuming %1…").arg(fileName)
                                  : tr("Starting %1…").arg(fileName));
    m_downloader->start(r);
}

void ModelLibraryDialog::cancelDownload()
{
    m_downloader->cancel();
}

void ModelLibraryDialog::showError(const QString &title, const QString &message)
{
    m_lastError = message;
    auto *box = new QMessageBox(QMessageBox::Warning, title, message, QMessageBox::Ok, this);
    box->setAttribute(Qt::WA_DeleteOnClose);
    box->open();
}
