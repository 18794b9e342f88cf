// ModelDownloader against a local HTTP server (support/http_test_server.h)
// serving a file the test made: progress, redirects with Hugging Face's
// linked size and SHA-256, resume after an interrupted transfer and after a
// cancel (Range), servers that ignore Range, size and checksum mismatches,
// HTTP errors, and Hugging Face URL parsing.
#include "http_test_server.h"
#include "model_downloader.h"

#include <QFile>
#include <QRandomGenerator>
#include <QTemporaryDir>
#include <QtTest>

namespace {

QByteArray randomBytes(int n, quint32 seed)
{
    QRandomGenerator gen(seed);
    QByteArray b(n, Qt::Uninitialized);
    for (int i = 0; i < n; ++i)
        b[i] = char(gen.bounded(256));
    return b;
}

QByteArray readAll(const QString &path)
{
    QFile f(path);
    return f.open(QIODevice::ReadOnly) ? f.readAll() : QByteArray();
}

}  // namespace

class TstUiModelDownloader : public QObject {
    Q_OBJECT
    QTemporaryDir m_dir;

    ModelDownloader::Request request(const HttpTestServer &server, const QString &path, const QString &name)
    {
        ModelDownloader::Request r;
        r.url = server.url(path);
        r.destination = m_dir.filePath(name);
        return r;
    }

private slots:
    void downloads_data()
    {
        QTest::addColumn<QString>("path");
        QTest::addColumn<bool>("linkedHeaders");
        QTest::addColumn<bool>("givenChecks");
        QTest::newRow("direct") << QStringLiteral("/cdn/model.gguf") << false << false;
        QTest::newRow("direct, given size and sha") << QStringLiteral("/cdn/model.gguf") << false << true;
        QTest::newRow("redirect with linked headers") << QStringLiteral("/resolve/main/model.gguf") << true << false;
    }
    void downloads()
    {
        QFETCH(QString, path);
        QFETCH(bool, linkedHeaders);
        QFETCH(bool, givenChecks);
        HttpTestServer server;
        QVERIFY(server.listen());
        server.body = randomBytes(300000, 1);
        if (linkedHeaders) {
            server.linkedSha = HttpTestServer::sha256(server.body);
            server.linkedSize = server.body.size();
        }
        ModelDownloader d;
        QSignalSpy progress(&d, &ModelDownloader::progress);
        QSignalSpy finished(&d, &ModelDownloader::finished);
        ModelDownloader::Request r = request(server, path, QStringLiteral("%1.gguf").arg(QTest::currentDataTag()));
        if (givenChecks) {
            r.expectedSize = server.body.size();
            r.expectedSha256 = HttpTestServer::sha256(server.body).toUpper();  // case does not matter
        }
        d.start(r);
        QVERIFY(finished.wait(20000));
        QCOMPARE(finished.first().first().toString(), r.destination);
        QCOMPARE(readAll(r.destination), server.body);
        QVERIFY(!QFile::exists(d.partPath()));
        QVERIFY(!progress.isEmpty());
        QCOMPARE(progress.last().at(0).toLongLong(), qint64(server.body.size()));
        QCOMPARE(progress.last().at(1).toLongLong(), qint64(server.body.size()));
        // Progress never goes backwards.
        for (int i = 1; i < progress.size(); ++i)
            QVERIFY(progress[i].at(0).toLongLong() >= progress[i - 1].at(0).toLongLong());
        QCOMPARE(d.state(), ModelDownloader::State::Finished);
    }

    void resumesAfterInterruption()
    {
        HttpTestServer server;
        QVERIFY(server.listen());
        server.body = randomBytes(250000, 2);
        server.dropAfter = 100000;
        ModelDownloader d;
        QSignalSpy failed(&d, &ModelDownloader::failed);
        QSignalSpy finished(&d, &ModelDownloader::finished);
        const ModelDownloader::Request r = request(server, QStringLiteral("/cdn/model.gguf"), QStringLiteral("resume.gguf"));
        d.start(r);
        QVERIFY(failed.wait(20000));
        QCOMPARE(d.state(), ModelDownloader::State::Failed);
        QCOMPARE(readAll(d.partPath()), server.body.left(100000));
        QVERIFY(!QFile::exists(r.destination));

        ModelDownloader::Request again = r;
        again.expectedSha256 = HttpTestServer::sha256(server.body);
        d.start(again);
        QVERIFY(finished.wait(20000));
        // (Qt's HTTP client may itself retry the broken request once, without a Range.)
        QCOMPARE(server.ranges.first(), QString());
        QCOMPARE(server.ranges.last(), QStringLiteral("bytes=100000-"));
        QCOMPARE(d.resumedFrom(), 100000);
        QCOMPARE(readAll(r.destination), server.body);
    }

    void cancelKeepsPartForResume()
    {
        HttpTestServer server;
        QVERIFY(server.listen());
        server.body = randomBytes(400000, 3);
        server.chunkDelayMs = 15;
        ModelDownloader d;
        QSignalSpy progress(&d, &ModelDownloader::progress);
        QSignalSpy cancelled(&d, &ModelDownloader::cancelled);
        QSignalSpy finished(&d, &ModelDownloader::finished);
        const ModelDownloader::Request r = request(server, QStringLiteral("/cdn/model.gguf"), QStringLiteral("cancel.gguf"));
        d.start(r);
        QTRY_VERIFY(d.received() > 8192);
        d.cancel();
        QCOMPARE(cancelled.size(), 1);
        QCOMPARE(d.state(), ModelDownloader::State::Cancelled);
        const QByteArray part = readAll(d.partPath());
        QVERIFY(part.size() > 0 && part.size() < server.body.size());
        QCOMPARE(part, server.body.left(part.size()));
        QTest::qWait(100);
        QVERIFY(finished.isEmpty());

        server.chunkDelayMs = 0;
        d.start(r);
        QVERIFY(finished.wait(20000));
        QCOMPARE(server.ranges.last(), QStringLiteral("bytes=%1-").arg(part.size()));
        QCOMPARE(readAll(r.destination), server.body);
    }

    void serverIgnoringRangeRestarts()
    {
        HttpTestServer server;
        QVERIFY(server.listen());
        server.body = randomBytes(50000, 4);
        server.supportRange = false;
        ModelDownloader d;
        const ModelDownloader::Request r = request(server, QStringLiteral("/cdn/model.gguf"), QStringLiteral("norange.gguf"));
        QFile stale(r.destination + QStringLiteral(".part"));
        QVERIFY(stale.open(QIODevice::WriteOnly));
        stale.write(QByteArray(1000, 'z'));
        stale.close();
        QSignalSpy finished(&d, &ModelDownloader::finished);
        d.start(r);
        QVERIFY(finished.wait(20000));
        QCOMPARE(server.ranges, QStringList{QStringLiteral("bytes=1000-")});
        QCOMPARE(readAll(r.destination), server.body);
    }

    void verificationFailures_data()
    {
        QTest::addColumn<QString>("path");
        QTest::addColumn<qint64>("givenSize");
        QTest::addColumn<QByteArray>("givenSha");
        QTest::addColumn<qint64>("linkedSize");
        QTest::addColumn<QByteArray>("linkedSha");
        QTest::addColumn<QString>("message");
        const QByteArray other = HttpTestServer::sha256("something else");
        QTest::newRow("given sha") << "/cdn/model.gguf" << qint64(-1) << other << qint64(-1) << QByteArray()
                                   << QStringLiteral("Checksum mismatch");
        QTest::newRow("linked sha") << "/resolve/main/model.gguf" << qint64(-1) << QByteArray() << qint64(-1) << other
                                    << QStringLiteral("Checksum mismatch");
        QTest::newRow("given size") << "/cdn/model.gguf" << qint64(20001) << QByteArray() << qint64(-1) << QByteArray()
                                    << QStringLiteral("Size mismatch");
        QTest::newRow("linked size") << "/resolve/main/model.gguf" << qint64(-1) << QByteArray() << qint64(19999)
                                     << QByteArray() << QStringLiteral("Size mismatch");
    }
    void verificationFailures()
    {
        QFETCH(QString, path);
        QFETCH(qint64, givenSize);
        QFETCH(QByteArray, givenSha);
        QFETCH(qint64, linkedSize);
        QFETCH(QByteArray, linkedSha);
        QFETCH(QString, message);
        HttpTestServer server;
        QVERIFY(server.listen());
        server.body = randomBytes(20000, 5);
        server.linkedSize = linkedSize;
        server.linkedSha = linkedSha;
        ModelDownloader d;
        QSignalSpy failed(&d, &ModelDownloader::failed);
        QSignalSpy finished(&d, &ModelDownloader::finished);
        ModelDownloader::Request r = request(server, path, QStringLiteral("bad-%1.gguf").arg(QTest::currentDataTag()));
        r.expectedSize = givenSize;
        r.expectedSha256 = givenSha;
        d.start(r);
        QVERIFY(failed.wait(20000));
        QVERIFY2(failed.first().first().toString().startsWith(message), qPrintable(failed.first().first().toString()));
        QVERIFY(finished.isEmpty());
        QVERIFY(!QFile::exists(r.destination));
        QVERIFY(!QFile::exists(d.partPath()));  // a bad file is not kept for resuming
    }

    void httpErrorFails()
    {
        HttpTestServer server;
        QVERIFY(server.listen());
        ModelDownloader d;
        QSignalSpy failed(&d, &ModelDownloader::failed);
        d.start(request(server, QStringLiteral("/cdn/missing.gguf"), QStringLiteral("missing.gguf")));
        QVERIFY(failed.wait(20000));
        QVERIFY2(failed.first().first().toString().contains(QStringLiteral("HTTP 404")),
                 qPrintable(failed.first().first().toString()));
    }

    void huggingFaceUrls_data()
    {
        QTest::addColumn<QString>("text");
        QTest::addColumn<bool>("ok");
        QTest::addColumn<QString>("url");
        QTest::addColumn<QString>("fileName");
        QTest::newRow("resolve") << "https://huggingface.co/org/repo-GGUF/resolve/main/model-Q4_K_M.gguf" << true
                                 << "https://huggingface.co/org/repo-GGUF/resolve/main/model-Q4_K_M.gguf"
                                 << "model-Q4_K_M.gguf";
        QTest::newRow("blob page, query") << " https://huggingface.co/org/repo/blob/main/sub/m.gguf?download=true " << true
                                          << "https://huggingface.co/org/repo/resolve/main/sub/m.gguf" << "m.gguf";
        QTest::newRow("revision") << "https://huggingface.co/a.b/c_d/resolve/abc123/x.gguf" << true
                                  << "https://huggingface.co/a.b/c_d/resolve/abc123/x.gguf" << "x.gguf";
        QTest::newRow("not gguf") << "https://huggingface.co/org/repo/resolve/main/model.bin" << false << "" << "";
        QTest::newRow("repo page") << "https://huggingface.co/org/repo" << false << "" << "";
        QTest::newRow("other host") << "https://example.com/org/repo/resolve/main/m.gguf" << false << "" << "";
        QTest::newRow("plain http") << "http://huggingface.co/org/repo/resolve/main/m.gguf" << false << "" << "";
        QTest::newRow("dot dot") << "https://huggingface.co/org/repo/resolve/main/../m.gguf" << false << "" << "";
    }
    void huggingFaceUrls()
    {
        QFETCH(QString, text);
        QFETCH(bool, ok);
        QFETCH(QString, url);
        QFETCH(QString, fileName);
        QUrl parsed;
        QString name, error;
        QCOMPARE(ModelDownloader::parseHuggingFaceUrl(text, &parsed, &name, &error), ok);
        if (ok) {
            QCOMPARE(parsed.toString(), url);
            QCOMPARE(name, fileName);
        } else {
            QVERIFY(error.contains(QStringLiteral("huggingface.co")));
        }
    }
};

QTEST_MAIN(TstUiModelDownloader)
#include "tst_ui_model_downloader.moc"
