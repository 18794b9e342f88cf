// A small HTTP/1.1 file server on 127.0.0.1 for downloader tests (QTcpServer,
// one request per connection). Serves one body at /cdn/model.gguf, and
// /resolve/main/model.gguf as a 302 to it carrying Hugging Face's
// X-Linked-Size / X-Linked-Etag headers. Supports "Range: bytes=N-"; can cut
// the first transfer short, send slowly, ignore ranges, or answer 404.
#pragma once

#include <QCryptographicHash>
#include <QPointer>
#include <QTcpServer>
#include <QTcpSocket>
#include <QTimer>
#include <QUrl>

class HttpTestServer : public QObject {
public:
    QByteArray body;
    qint64 dropAfter = -1;      // >= 0: the next file transfer stops after this many bytes (once)
    bool supportRange = true;
    int chunkDelayMs = 0;       // > 0: send 4 KiB every chunkDelayMs
    QByteArray linkedSha;       // X-Linked-Etag on the redirect ("" = none)
    qint64 linkedSize = -1;     // X-Linked-Size on the redirect (-1 = none)
    QStringList ranges;         // Range header of every file request ("" when none)
    int requests = 0;

    bool listen() { return m_server.listen(QHostAddress::LocalHost, 0); }
    QUrl url(const QString &path) const
    {
        return QUrl(QStringLiteral("http://127.0.0.1:%1%2").arg(m_server.serverPort()).arg(path));
    }
    static QByteArray sha256(const QByteArray &data)
    {
        return QCryptographicHash::hash(data, QCryptographicHash::Sha256).toHex();
    }

    HttpTestServer()
    {
        connect(&m_server, &QTcpServer::newConnection, this, [this] {
            while (QTcpSocket *s = m_server.nextPendingConnection()) {
                s->setParent(this);
                connect(s, &QTcpSocket::readyRead, this, [this, s] { onRead(s); });
                connect(s, &QTcpSocket::disconnected, s, &QObject::deleteLater);
            }
        });
    }

private:
    void onRead(QTcpSocket *s)
    {
        QByteArray &buf = m_buffers[s];
        buf += s->readAll();
        const int end = buf.indexOf("\r\n\r\n");
        if (end < 0)
            return;
        const QList<QByteArray> lines = buf.left(end).split('\n');
        m_buffers.remove(s);
        const QList<QByteArray> requestLine = lines.value(0).trimmed().split(' ');
        const QByteArray path = requestLine.value(1);
        QByteArray range;
        for (const QByteArray &l : lines)
            if (l.toLower().startsWith("range:"))
                range = l.mid(6).trimmed();
        ++requests;
        if (path == "/resolve/main/model.gguf") {
            QByteArray head = "HTTP/1.1 302 Found\r\nLocation: /cdn/model.gguf\r\nContent-Length: 0\r\nConnection: close\r\n";
            if (!linkedSha.isEmpty())
                head += "X-Linked-Etag: \"" + linkedSha + "\"\r\n";
            if (linkedSize >= 0)
                head += "X-Linked-Size: " + QByteArray::number(linkedSize) + "\r\n";
            s->write(head + "\r\n");
            s->disconnectFromHost();
            return;
        }
        if (path != "/cdn/model.gguf") {
            s->write("HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found");
            s->disconnectFromHost();
            return;
        }
        ranges.append(QString::fromLatin1(range));
        qint64 from = 0;
        QByteArray head;
        if (supportRange && range.startsWith("bytes=") && range.endsWith('-')) {
            from = range.mid(6, range.size() - 7).toLongLong();
            if (from >= body.size()) {
                s->write("HTTP/1.1 416 Range Not Satisfiable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                s->disconnectFromHost();
                return;
            }
            head = "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes " + QByteArray::number(from) + "-" +
                   QByteArray::number(body.size() - 1) + "/" + QByteArray::number(body.size()) + "\r\n";
        } else {
            head = "HTTP/1.1 200 OK\r\n";
        }
        head += "Content-Type: application/octet-stream\r\nContent-Length: " + QByteArray::number(body.size() - from) +
                "\r\nAccept-Ranges: bytes\r\nConnection: close\r\n\r\n";
        s->write(head);
        QByteArray payload = body.mid(from);
        if (dropAfter >= 0) {
            payload = payload.left(dropAfter);
            dropAfter = -1;
            s->write(payload);
            QTimer::singleShot(50, s, [s] { s->disconnectFromHost(); });
            return;
        }
        if (chunkDelayMs <= 0) {
            s->write(payload);
            s->disconnectFromHost();
            return;
        }
        auto *timer = new QTimer(s);
        auto offset = std::make_shared<qint64>(0);
        connect(timer, &QTimer::timeout, s, [s, timer, payload, offset] {
            if (s->state() != QAbstractSocket::ConnectedState) {
                timer->stop();
                return;
            }
            s->write(payload.mid(*offset, 4096));
            *offset += 4096;
            if (*offset >= payload.size()) {
                timer->stop();
                s->disconnectFromHost();
            }
        });
        timer->start(chunkDelayMs);
    }

    QTcpServer m_server;
    QHash<QTcpSocket *, QByteArray> m_buffers;
};
