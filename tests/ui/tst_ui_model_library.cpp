// The model library: GGUF summaries of files this test writes with
// gb::gguf::Writer (the values written are the oracle), bad files (truncated,
// text renamed .gguf) rejected with a message while good ones are added, the
// memory check, and a download through the dialog from a local server.
#include "chat_store.h"
#include "http_test_server.h"
#include "model_downloader.h"
#include "model_library_dialog.h"
#include "model_metadata.h"
#include "store_test_util.h"

#include "glassbox/gguf.h"

#include <QDir>
#include <QLabel>
#include <QLineEdit>
#include <QMessageBox>
#include <QPushButton>
#include <QTemporaryDir>
#include <QTreeWidget>
#include <QtTest>

namespace {

struct TensorSpec {
    const char *name;
    gb::TensorType type;
    std::vector<int64_t> ne;
};

// Writes a GGUF with the given metadata and zero-filled tensors.
bool writeGguf(const QString &path, const QString &arch, int fileType, int contextLength, bool chatTemplate,
               const QString &license, const std::vector<TensorSpec> &tensors)
{
    gb::gguf::Writer w;
    w.set_string("general.architecture", arch.toStdString());
    w.set_string("general.name", "test model");
    if (fileType >= 0)
        w.set_u32("general.file_type", uint32_t(fileType));
    if (!license.isEmpty())
        w.set_string("general.license", license.toStdString());
    if (contextLength > 0)
        w.set_u32(arch.toStdString() + ".context_length", uint32_t(contextLength));
    if (chatTemplate)
        w.set_string("tokenizer.chat_template", "{{ messages }}");
    for (const TensorSpec &t : tensors) {
        int64_t rows = 1;
        for (size_t i = 1; i < t.ne.size(); ++i)
            rows *= t.ne[i];
        const size_t bytes = gb::row_size(t.type, t.ne[0]) * size_t(rows);
        if (!w.add_tensor(t.name, t.type, t.ne, std::vector<uint8_t>(bytes, 0)))
            return false;
    }
    return bool(w.write(QFile::encodeName(path).toStdString()));
}

}  // namespace

class TstUiModelLibrary : public QObject {
    Q_OBJECT
    QTemporaryDir m_dir;

private slots:
    void summary_data()
    {
        QTest::addColumn<QString>("arch");
        QTest::addColumn<int>("fileType");
        QTest::addColumn<int>("context");
        QTest::addColumn<bool>("chatTemplate");
        QTest::addColumn<QString>("license");
        QTest::addColumn<QString>("quantization");
        QTest::addColumn<qulonglong>("parameters");
        const std::vector<TensorSpec> none;
        QTest::newRow("llama Q4_K_M") << "llama" << 15 << 2048 << true << "apache-2.0" << "Q4_K_M" << qulonglong(64 * 4 + 32);
        QTest::newRow("qwen2 F16") << "qwen2" << 1 << 32768 << false << "" << "F16" << qulonglong(64 * 4 + 32);
        QTest::newRow("no file type: largest tensor type") << "gemma3" << -1 << 0 << false << "mit" << "Q8_0"
                                                           << qulonglong(64 * 4 + 32);
    }
    void summary()
    {
        QFETCH(QString, arch);
        QFETCH(int, fileType);
        QFETCH(int, context);
        QFETCH(bool, chatTemplate);
        QFETCH(QString, license);
        QFETCH(QString, quantization);
        QFETCH(qulonglong, parameters);
        const QString path = m_dir.filePath(QStringLiteral("%1.gguf").arg(QTest::currentDataTag()));
        QVERIFY(writeGguf(path, arch, fileType, context, chatTemplate, license,
                          {{"big", gb::TensorType::Q8_0, {64, 4}}, {"small", gb::TensorType::F32, {32}}}));
        const GgufSummary s = readGgufSummary(path);
        QVERIFY2(s.ok, qPrintable(s.error));
        QCOMPARE(s.architecture, arch);
        QCOMPARE(s.name, QStringLiteral("test model"));
        QCOMPARE(s.quantization, quantization);
        QCOMPARE(s.contextLength, qint64(context));
        QCOMPARE(s.hasChatTemplate, chatTemplate);
        QCOMPARE(s.license, license);
        QCOMPARE(qulonglong(s.parameters), parameters);
        QCOMPARE(s.fileSize, QFileInfo(path).size());
        // Stored as JSON in the library and read back unchanged.
        const GgufSummary back = GgufSummary::fromJson(path, s.toJson());
        QCOMPARE(back.toJson(), s.toJson());
    }

    void badFiles_data()
    {
        QTest::addColumn<QByteArray>("content");
        QTest::addColumn<bool>("truncate");
        QTest::newRow("text renamed .gguf") << QByteArray("hello, I am not a model\n") << false;
        QTest::newRow("empty") << QByteArray() << false;
        QTest::newRow("truncated GGUF") << QByteArray() << true;
    }
    void badFiles()
    {
        QFETCH(QByteArray, content);
        QFETCH(bool, truncate);
        const QString path = m_dir.filePath(QStringLiteral("bad-%1.gguf").arg(QTest::currentDataTag()).replace(' ', '_'));
        if (truncate) {
            QVERIFY(writeGguf(path, QStringLiteral("llama"), 15, 2048, true, {}, {{"w", gb::TensorType::F32, {256, 16}}}));
            QFile f(path);
            QVERIFY(f.resize(f.size() / 2));
        } else {
            QFile f(path);
            QVERIFY(f.open(QIODevice::WriteOnly));
            f.write(content);
        }
        const GgufSummary s = readGgufSummary(path);
        QVERIFY(!s.ok);
        QVERIFY(!s.error.isEmpty());
    }

    void memoryCheck_data()
    {
        QTest::addColumn<QString>("meminfo");
        QTest::addColumn<qint64>("available");
        QTest::newRow("typical") << "MemTotal:       16318412 kB\nMemFree:         1234 kB\nMemAvailable:    8000000 kB\n"
                                 << qint64(8000000) * 1024;
        QTest::newRow("missing") << "MemTotal: 100 kB\n" << qint64(-1);
    }
    void memoryCheck()
    {
        QFETCH(QString, meminfo);
        QFETCH(qint64, available);
        QCOMPARE(parseMemAvailable(meminfo), available);
        QVERIFY(availableMemoryBytes() > 0);  // this machine has a /proc/meminfo
        const qint64 gb4 = qint64(4) << 30;
        QVERIFY(memoryWarning(gb4, qint64(16) << 30).isEmpty());
        QVERIFY(!memoryWarning(gb4, qint64(2) << 30).isEmpty());
        QVERIFY(memoryWarning(gb4, -1).isEmpty());  // unknown: no warning
    }

    void dialogAddsGoodRejectsBad()
    {
        ChatStore store;
        QVERIFY(!storeResult(store, &ChatStore::opened, store.open(m_dir.filePath(QStringLiteral("lib.sqlite")))).isEmpty());
        const QString folder = m_dir.filePath(QStringLiteral("models"));
        QVERIFY(QDir().mkpath(folder + QStringLiteral("/nested")));
        QVERIFY(writeGguf(folder + QStringLiteral("/a.gguf"), QStringLiteral("llama"), 15, 4096, true, QStringLiteral("mit"),
                          {{"w", gb::TensorType::F32, {32, 2}}}));
        QVERIFY(writeGguf(folder + QStringLiteral("/nested/b.gguf"), QStringLiteral("qwen2"), 7, 8192, false, {},
                          {{"w", gb::TensorType::Q8_0, {64, 2}}}));
        QFile text(folder + QStringLiteral("/notes.gguf"));
        QVERIFY(text.open(QIODevice::WriteOnly));
        text.write("just text");
        text.close();

        ModelLibraryDialog dialog(&store, m_dir.filePath(QStringLiteral("downloads")));
        dialog.show();
        QSignalSpy added(&dialog, &ModelLibraryDialog::modelAdded);
        QSignalSpy rejected(&dialog, &ModelLibraryDialog::modelRejected);
        dialog.addPaths({folder});
        QTRY_COMPARE(added.size(), 2);
        QTRY_COMPARE(rejected.size(), 1);
        QCOMPARE(rejected.first().first().toString(), folder + QStringLiteral("/notes.gguf"));
        QTRY_COMPARE(dialog.table()->topLevelItemCount(), 2);
        QVERIFY(!dialog.findChildren<QMessageBox *>().isEmpty());  // the bad file got a message
        QStringList archs;
        for (int i = 0; i < 2; ++i)
            archs << dialog.table()->topLevelItem(i)->text(1);
        archs.sort();
        QCOMPARE(archs, (QStringList{QStringLiteral("llama"), QStringLiteral("qwen2")}));

        // Too little memory: a warning for the selected model.
        dialog.setAvailableMemoryOverride(1024);
        dialog.table()->topLevelItem(0)->setSelected(true);
        auto *warning = dialog.findChild<QLabel *>(QStringLiteral("memoryWarning"));
        QTRY_VERIFY(warning->isVisible());
        QVERIFY(warning->text().contains(QStringLiteral("memory")));
        dialog.setAvailableMemoryOverride(qint64(64) << 30);
        QTRY_VERIFY(!warning->isVisible());

        QSignalSpy load(&dialog, &ModelLibraryDialog::loadRequested);
        dialog.table()->topLevelItem(0)->setSelected(true);
        QTest::mouseClick(dialog.findChild<QPushButton *>(QStringLiteral("loadModelButton")), Qt::LeftButton);
        QCOMPARE(load.size(), 1);
        QVERIFY(load.first().first().toString().endsWith(QStringLiteral(".gguf")));

        // The library is in the store: a new dialog lists the same models.
        ModelLibraryDialog again(&store, m_dir.filePath(QStringLiteral("downloads")));
        QTRY_COMPARE(again.table()->topLevelItemCount(), 2);
    }

    void dialogDownloadsIntoLibrary()
    {
        ChatStore store;
        QVERIFY(!storeResult(store, &ChatStore::opened, store.open(m_dir.filePath(QStringLiteral("dl.sqlite")))).isEmpty());
        const QString made = m_dir.filePath(QStringLiteral("served.gguf"));
        QVERIFY(writeGguf(made, QStringLiteral("llama"), 2, 1024, true, {}, {{"w", gb::TensorType::F32, {128, 8}}}));
        QFile f(made);
        QVERIFY(f.open(QIODevice::ReadOnly));
        HttpTestServer server;
        QVERIFY(server.listen());
        server.body = f.readAll();
        server.linkedSha = HttpTestServer::sha256(server.body);
        server.linkedSize = server.body.size();

        ModelLibraryDialog dialog(&store, m_dir.filePath(QStringLiteral("downloads")));
        QSignalSpy added(&dialog, &ModelLibraryDialog::modelAdded);
        dialog.startDownload(server.url(QStringLiteral("/resolve/main/model.gguf")), QStringLiteral("served-copy.gguf"));
        QVERIFY(added.wait(20000));
        const QString dest = m_dir.filePath(QStringLiteral("downloads/served-copy.gguf"));
        QCOMPARE(added.first().first().toString(), dest);
        QTRY_COMPARE(dialog.table()->topLevelItemCount(), 1);
        QCOMPARE(dialog.table()->topLevelItem(0)->text(3), QStringLiteral("Q4_0"));  // file_type 2

        // A URL that is not a Hugging Face file is refused before anything starts.
        dialog.findChild<QLineEdit *>(QStringLiteral("downloadUrl"))->setText(QStringLiteral("https://example.com/x.gguf"));
        dialog.startDownloadFromFields();
        QVERIFY(dialog.lastError().contains(QStringLiteral("huggingface.co")));
        QCOMPARE(dialog.downloader()->state(), ModelDownloader::State::Finished);
    }
};

QTEST_MAIN(TstUiModelLibrary)
#include "tst_ui_model_library.moc"
