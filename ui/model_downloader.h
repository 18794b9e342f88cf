// ModelDownloader: fetches one GGUF file over HTTP(S) into <destination>.part
// with progress, then checks its size and SHA-256 (given, or from Hugging
// Face's X-Linked-Size / X-Linked-Etag headers) and renames it into place.
// A download that was cancelled or broke off resumes with a Range request.
#pragma once

#include <QByteArray>
#include <QFile>
#include <QObject>
#include <QPointer>
#include <QUrl>

class QNetworkAccessManager;
class QNetworkReply;

class ModelDownloader : public QObject {
    Q_OBJECT
public:
    enum class State { Idle, Downloading, Verifying, Finished, Failed, Cancelled };
    Q_ENUM(State)

    struct Request {
        QUrl url;
        QString destination;       // final path; the partial file is destination + ".part"
        qint64 expectedSize = -1;  // -1: unknown (a server header may tell)
        QByteArray expectedSha256; // hex; empty: unknown (a server header may tell)
    };

    explicit ModelDownloader(QObject *parent = nullptr);
    ~ModelDownloader() override;

    // Accepts https://huggingface.co/<org>/<repo>/resolve/<rev>/<path>.gguf
    // (and the /blob/ page URL of the same file, turned into /resolve/).
    // Returns the download URL and the file name, or false with *error.
    static bool parseHuggingFaceUrl(const QString &text, QUrl *url, QString *fileName, QString *error);

    void start(const Request &request);
    void cancel();  // keeps the partial file for a later resume

    State state() const { return m_state; }
    Request request() const { return m_request; }
    QString partPath() const { return m_request.destination + QStringLiteral(".part"); }
    qint64 received() const { return m_received; }
    qint64 total() const { return m_total; }      // -1: unknown
    qint64 resumedFrom() const { return m_resumedFrom; }
    QString errorString() const { return m_error; }

signals:
    void progress(qint64 received, qint64 total);
    void stateChanged(ModelDownloader::State state);
    void finished(const QString &path);
    void failed(const QString &message);
    void cancelled();

private:
    void sendRequest(const QUrl &url);
    void onMetaData();
    void onReadyRead();
    void onFinished();
    void verify();
    void fail(const QString &message, bool removePart);
    void setState(State s);
    void readLinkedHeaders();

    QNetworkAccessManager *m_network = nullptr;
    QPointer<QNetworkReply> m_reply;
    QFile m_file;
    Request m_request;
    State m_state = State::Idle;
    qint64 m_offset = 0;        // bytes already in the part file when this request started
    qint64 m_received = 0;
    qint64 m_total = -1;
    qint64 m_resumedFrom = 0;
    qint64 m_headerSize = -1;
    QByteArray m_headerSha;
    int m_redirects = 0;
    bool m_checkedStatus = false;
    QString m_error;
};
