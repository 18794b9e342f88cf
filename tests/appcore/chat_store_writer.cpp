// Test helper for tst_chat_store: fills a chat store with finished messages,
// then streams a reply into it forever (the test kills it with SIGKILL).
// Usage: chat_store_writer DB_PATH N_PAIRS
#include "chat_store.h"

#include <QCoreApplication>
#include <QTimer>

#include <cstdio>

int main(int argc, char **argv)
{
    QCoreApplication app(argc, argv);
    if (argc != 3)
        return 2;
    const QString path = QString::fromLocal8Bit(argv[1]);
    const int pairs = std::atoi(argv[2]);

    ChatStore store;
    QObject::connect(&store, &ChatStore::errorOccurred, [](quint64, ChatStore::ErrorKind, const QString &message) {
        std::fprintf(stderr, "error: %s\n", qPrintable(message));
        QCoreApplication::exit(1);
    });
    ChatStore::OpenParams params;
    params.streamWriteIntervalMs = 2;
    store.open(path, params);
    store.createConversation(QStringLiteral("kill test"));

    qint64 conversationId = 0;
    qint64 lastId = 0;
    int appended = 0;
    QString text;
    QTimer streamer;
    qint64 streamingId = 0;
    QObject::connect(&streamer, &QTimer::timeout, [&] {
        text += QStringLiteral("token ");
        store.updateStreamingMessage(streamingId, text);
    });
    auto appendNext = [&] {
        if (appended < pairs) {
            store.appendMessages(conversationId, lastId,
                                 {MessageDraft{QStringLiteral("user"), QStringLiteral("question %1").arg(appended),
                                               MessageState::Complete, {}},
                                  MessageDraft{QStringLiteral("assistant"), QStringLiteral("answer %1").arg(appended),
                                               MessageState::Complete, {}}});
        } else {
            store.appendMessages(conversationId, lastId,
                                 {MessageDraft{QStringLiteral("user"), QStringLiteral("last question"),
                                               MessageState::Complete, {}},
                                  MessageDraft{QStringLiteral("assistant"), QString(), MessageState::Streaming, {}}});
        }
    };
    QObject::connect(&store, &ChatStore::conversationCreated, [&](quint64, const ConversationRecord &c) {
        conversationId = c.id;
        appendNext();
    });
    QObject::connect(&store, &ChatStore::messagesAppended, [&](quint64, qint64, const QList<MessageRecord> &m) {
        lastId = m.last().id;
        if (appended++ < pairs) {
            appendNext();
            return;
        }
        streamingId = lastId;
        std::printf("STREAMING %lld %lld\n", static_cast<long long>(conversationId), static_cast<long long>(lastId));
        std::fflush(stdout);
        streamer.start(0);
    });
    return app.exec();
}
