// ModelDownloader: manual redirects (so Hugging Face's X-Linked-* headers on
// the redirect are seen), Range resume, streaming to the part file, and a
// hash check on a worker thread.
#include "model_downloader.h"

#include <QCryptographicHash>
#include <QFileInfo>
#include <QFutureWatcher>
#include <QNetworkAccessManager>
#include <QNetworkReply>
#include <QNetworkRequest>
#include <QRegularExpression>
#include <QtConcurrent/QtConcurrentRun>

namespace {

constexpr int kMaxRedirects = 8;

QByteArray sha256Of(const QString &path)
{
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly))
        return {};
    QCryptographicHash hash(QCryptographicHash::Sha256);
    if (!hash.addData(&f))
        return {};
    return hash.result().toHex();
}

}  // namespace

ModelDownloader::ModelDownloader(QObject *parent)
    : QObject(parent)
    , m_network(new QNetworkAccessManager(this))
{
}

ModelDownloader::~ModelDownloader()
{
    if (m_reply) {
        m_reply->disconnect(this);
        m_reply->abort();
    }
}

bool ModelDownloader::parseHuggingFaceUrl(const QString &text, QUrl *url, QString *fileName, QString *error)
{
    static const QRegularExpression re(
        QStringLiteral("^https://huggingface\\.co/([\\w.-]+)/([\\w.-]+)/(resolve|blob)/([\\w.%-]+)/(.+\\.gguf)$"),
        QRegularExpression::CaseInsensitiveOption);
    QString t = text.trimmed();
    const int query = t.indexOf(QLatin1Char('?'));
    if (query >= 0)
        t = t.left(query);
    const QRegularExpressionMatch m = re.match(t);
    if (!m.hasMatch() || m.captured(5).contains(QStringLiteral(".."))) {
        if (error)
            *error = QObject::tr("Not a Hugging Face file URL. Use the form "
                                 "https://huggingface.co/<org>/<repo>/resolve/main/<file>.gguf");
        return false;
    }
    const QString path = m.captured(5);
    if (url)
        *url = QUrl(QStringLiteral("https://huggingface.co/%1/%2/resolve/%3/%4")
                        .arg(m.captured(1), m.captured(2), m.captured(4), path));
    if (fileName)
        *fileName = path.section(QLatin1Char('/'), -1);
    return true;
}

void ModelDownloader::setState(State s)
{
    if (s == m_state)
        return;
    m_state = s;
    emit stateChanged(s);
}

void ModelDownloader::start(const Request &request)
{
    if (m_state == State::Downloading || m_state == State::Verifying)
        return;
    m_request = request;
    m_request.expectedSha256 = request.expectedSha256.trimmed().toLower();
    m_error.clear();
    m_headerSize = -1;
    m_headerSha.clear();
    m_redirects = 0;
    m_total = -1;
    m_file.setFileName(partPath());
    if (!m_file.open(QIODevice::ReadWrite)) {
        fail(tr("Cannot write %1: %2").arg(partPath(), m_file.errorString()), false);
        return;
    }
    m_offset = m_file.size();
    m_file.seek(m_offset);
    m_resumedFrom = m_offset;
    m_received = m_offset;
    setState(State::Downloading);
    sendRequest(m_request.url);
}

void ModelDownloader::sendRequest(const QUrl &url)
{
    QNetworkRequest req(url);
    req.setAttribute(QNetworkRequest::RedirectPolicyAttribute, QNetworkRequest::ManualRedirectPolicy);
    req.setHeader(QNetworkRequest::UserAgentHeader, QByteArrayLiteral("Glassbox/0.1"));
    if (m_offset > 0)
        req.setRawHeader("Range", "bytes=" + QByteArray::number(m_offset) + "-");
    m_checkedStatus = false;
    m_reply = m_network->get(req);
    connect(m_reply, &QNetworkReply::metaDataChanged, this, &ModelDownloader::onMetaData);
    connect(m_reply, &QNetworkReply::readyRead, this, &ModelDownloader::onReadyRead);
    connect(m_reply, &QNetworkReply::finished, this, &ModelDownloader::onFinished);
}

void ModelDownloader::readLinkedHeaders()
{
    // Hugging Face puts the LFS object's size and SHA-256 on the resolve response.
    const QByteArray size = m_reply->rawHeader("X-Linked-Size");
    if (!size.isEmpty())
        m_headerSize = size.toLongLong();
    QByteArray etag = m_reply->rawHeader("X-Linked-Etag");
    etag.replace('"', "");
    if (etag.startsWith("W/"))
        etag = etag.mid(2);
    if (etag.size() == 64)
        m_headerSha = etag.toLower();
}

void ModelDownloader::onMetaData()
{
    if (!m_reply || m_checkedStatus)
        return;
    const int status = m_reply->attribute(QNetworkRequest::HttpStatusCodeAttribute).toInt();
    if (status == 0)
        return;
    m_checkedStatus = true;
    readLinkedHeaders();
    if (status >= 300 && status < 400)
        return;  // followed in onFinished
    if (status == 200 && m_offset > 0) {
        // The server ignored the Range: start over.
        m_file.resize(0);
        m_file.seek(0);
        m_offset = 0;
        m_resumedFrom = 0;
        m_received = 0;
    }
    if (status == 200 || status == 206) {
        const qint64 length = m_reply->header(QNetworkRequest::ContentLengthHeader).toLongLong();
        if (length > 0)
            m_total = m_offset + length;
        const qint64 expected = m_request.expectedSize >= 0 ? m_request.expectedSize : m_headerSize;
        if (expected >= 0 && m_total >= 0 && m_total != expected) {
            fail(tr("Size mismatch: the server sends %1 bytes, expected %2.").arg(m_total).arg(expected), true);
            return;
        }
        emit progress(m_received, m_total);
    }
}

void ModelDownloader::onReadyRead()
{
    if (!m_reply || m_state != State::Downloading)
        return;
    const int status = m_reply->attribute(QNetworkRequest::HttpStatusCodeAttribute).toInt();
    if (status != 200 && status != 206)
        return;  // redirect or error bodies are not the file
    const QByteArray data = m_reply->readAll();
    if (data.isEmpty())
        return;
    if (m_file.write(data) != data.size()) {
        fail(tr("Cannot write %1: %2").arg(partPath(), m_file.errorString()), false);
        return;
    }
    m_received += data.size();
    emit progress(m_received, m_total);
}

void ModelDownloader::onFinished()
{
    QNetworkReply *reply = m_reply;
    if (!reply)
        return;
    reply->deleteLater();
    m_reply = nullptr;
    if (m_state != State::Downloading)
        return;  // cancelled or failed already
    const int status = reply->attribute(QNetworkRequest::HttpStatusCodeAttribute).toInt();
    if (status >= 300 && status < 400) {
        const QUrl location = QUrl::fromEncoded(reply->rawHeader("Location"));
        const QUrl target = reply->url().resolved(location);
        if (location.isEmpty() || !target.isValid() || ++m_redirects > kMaxRedirects) {
            fail(tr("Too many or bad redirects from %1.").arg(m_request.url.toString()), false);
            return;
        }
        sendRequest(target);
        return;
    }
    if (status == 416 && m_offset > 0) {
        // Range past the end: the part file may already be complete; let the checks decide.
        m_file.flush();
        verify();
        return;
    }
    if (reply->error() != QNetworkReply::NoError || (status != 200 && status != 206)) {
        const QString why = status >= 400 ? QStringLiteral("HTTP %1 %2").arg(status).arg(
                                                reply->attribute(QNetworkRequest::HttpReasonPhraseAttribute).toString())
                                          : reply->errorString();
        fail(tr("Download of %1 failed: %2").arg(m_request.url.fileName(), why), false);
        return;
    }
    onReadyRead();
    if (m_state != State::Downloading)
        return;
    m_file.flush();
    if (m_total >= 0 && m_received < m_total) {
        fail(tr("Download of %1 broke off after %2 of %3 bytes; start it again to resume.")
                 .arg(m_request.url.fileName())
                 .arg(m_received)
                 .arg(m_total),
             false);
        return;
    }
    verify();
}

void ModelDownloader::verify()
{
    m_file.close();
    setState(State::Verifying);
    const qint64 size = QFileInfo(partPath()).size();
    const qint64 expected = m_request.expectedSize >= 0 ? m_request.expectedSize : m_headerSize;
    if (expected >= 0 && size != expected) {
        fail(tr("Size mismatch: downloaded %1 bytes, expected %2.").arg(size).arg(expected), true);
        return;
    }
    const QByteArray sha = !m_request.expectedSha256.isEmpty() ? m_request.expectedSha256 : m_headerSha;
    auto complete = [this](const QByteArray &actual, const QByteArray &wanted) {
        if (!wanted.isEmpty() && actual != wanted) {
            fail(tr("Checksum mismatch: SHA-256 %1, expected %2.").arg(QString::fromLatin1(actual),
                                                                       QString::fromLatin1(wanted)),
                 true);
            return;
        }
        QFile::remove(m_request.destination);
        if (!QFile::rename(partPath(), m_request.destination)) {
            fail(tr("Cannot move the download to %1.").arg(m_request.destination), false);
            return;
        }
        setState(State::Finished);
        emit finished(m_request.destination);
    };
    if (sha.isEmpty()) {
        complete({}, {});
        return;
    }
    auto *watcher = new QFutureWatcher<QByteArray>(this);
    connect(watcher, &QFutureWatcher<QByteArray>::finished, this, [this, watcher, sha, complete] {
        watcher->deleteLater();
        if (m_state == State::Verifying)
            complete(watcher->result(), sha);
    });
    watcher->setFuture(QtConcurrent::run(sha256Of, partPath()));
}

void ModelDownloader::cancel()
{
    if (m_state != State::Downloading && m_state != State::Verifying)
        return;
    if (m_reply) {
        QNetworkReply *r = m_reply;
        m_reply = nullptr;
        r->disconnect(this);
        r->abort();
        r->deleteLater();
    }
    m_file.close();
    setState(State::Cancelled);
    emit cancelled();
}

void ModelDownloader::fail(const QString &message, bool removePart)
{
    if (m_reply) {
        QNetworkReply *r = m_reply;
        m_reply = nullptr;
        r->disconnect(this);
        r->abort();
        r->deleteLater();
    }
    m_file.close();
    if (removePart)
        QFile::remove(partPath());
    m_error = message;
    setState(State::Failed);
    emit failed(message);
}
