// Helpers of the shared value types: state names, stats <-> JSON, metatypes.
#include "app_types.h"

QString messageStateName(MessageState state)
{
    switch (state) {
    case MessageState::Complete: return QStringLiteral("complete");
    case MessageState::Streaming: return QStringLiteral("streaming");
    case MessageState::Interrupted: return QStringLiteral("interrupted");
    case MessageState::Cancelled: return QStringLiteral("cancelled");
    case MessageState::Failed: return QStringLiteral("failed");
    }
    return QStringLiteral("complete");
}

MessageState messageStateFromName(const QString &name)
{
    if (name == QLatin1String("streaming")) return MessageState::Streaming;
    if (name == QLatin1String("interrupted")) return MessageState::Interrupted;
    if (name == QLatin1String("cancelled")) return MessageState::Cancelled;
    if (name == QLatin1String("failed")) return MessageState::Failed;
    return MessageState::Complete;
}

QString tokenSourceName(TokenSource source)
{
    switch (source) {
    case TokenSource::Target: return QStringLiteral("model");
    case TokenSource::Draft: return QStringLiteral("accepted draft");
    case TokenSource::Correction: return QStringLiteral("correction");
    case TokenSource::Bonus: return QStringLiteral("bonus");
    }
    return QStringLiteral("model");
}

bool EngineConfig::requantizes() const
{
    const QString base = QStringLiteral("base");
    const QString file = QStringLiteral("file");
    for (const QString &cls : {weightFormatAttention, weightFormatFeedForward, weightFormatEmbedding, weightFormatOutput})
        if (cls != base && cls != weightFormat)
            return true;
    return weightFormat != file;
}

QJsonObject GenerationStats::toJson() const
{
    QJsonObject o;
    o.insert(QStringLiteral("prompt_tokens"), promptTokens);
    o.insert(QStringLiteral("prompt_tokens_reused"), promptTokensReused);
    o.insert(QStringLiteral("prefix_hit"), promptTokens > 0 ? double(promptTokensReused) / promptTokens : 0.0);
    o.insert(QStringLiteral("tokens"), generatedTokens);
    o.insert(QStringLiteral("dropped_messages"), droppedMessages);
    o.insert(QStringLiteral("prompt_ms"), promptMs);
    o.insert(QStringLiteral("ttft_ms"), firstTokenMs);
    o.insert(QStringLiteral("total_ms"), totalMs);
    o.insert(QStringLiteral("tokens_per_s"), tokensPerSecond);
    o.insert(QStringLiteral("prompt_tokens_per_s"), promptTokensPerSecond);
    o.insert(QStringLiteral("stop"), stopReason);
    if (!modelDescription.isEmpty())
        o.insert(QStringLiteral("model"), modelDescription);
    if (!enginePath.isEmpty())
        o.insert(QStringLiteral("engine"), enginePath);
    o.insert(QStringLiteral("queue_ms"), queueMs);
    if (!specMethod.isEmpty() && specMethod != QLatin1String("none")) {
        o.insert(QStringLiteral("spec_method"), specMethod);
        o.insert(QStringLiteral("spec_proposed"), specProposed);
        o.insert(QStringLiteral("spec_accepted"), specAccepted);
        o.insert(QStringLiteral("spec_steps"), specSteps);
        o.insert(QStringLiteral("spec_draft_tokens"), specDraftTokens);
    }
    return o;
}

GenerationStats GenerationStats::fromJson(const QJsonObject &o)
{
    GenerationStats s;
    s.promptTokens = o.value(QStringLiteral("prompt_tokens")).toInt();
    s.promptTokensReused = o.value(QStringLiteral("prompt_tokens_reused")).toInt();
    s.generatedTokens = o.value(QStringLiteral("tokens")).toInt();
    s.droppedMessages = o.value(QStringLiteral("dropped_messages")).toInt();
    s.promptMs = o.value(QStringLiteral("prompt_ms")).toDouble();
    s.firstTokenMs = o.value(QStringLiteral("ttft_ms")).toDouble();
    s.totalMs = o.value(QStringLiteral("total_ms")).toDouble();
    s.tokensPerSecond = o.value(QStringLiteral("tokens_per_s")).toDouble();
    s.promptTokensPerSecond = o.value(QStringLiteral("prompt_tokens_per_s")).toDouble();
    s.stopReason = o.value(QStringLiteral("stop")).toString();
    s.modelDescription = o.value(QStringLiteral("model")).toString();
    s.enginePath = o.value(QStringLiteral("engine")).toString();
    s.queueMs = o.value(QStringLiteral("queue_ms")).toDouble();
    s.specMethod = o.value(QStringLiteral("spec_method")).toString();
    s.specProposed = o.value(QStringLiteral("spec_proposed")).toInteger();
    s.specAccepted = o.value(QStringLiteral("spec_accepted")).toInteger();
    s.specSteps = o.value(QStringLiteral("spec_steps")).toInteger();
    s.specDraftTokens = o.value(QStringLiteral("spec_draft_tokens")).toInteger();
    return s;
}

void registerAppCoreMetaTypes()
{
    qRegisterMetaType<ConversationRecord>();
    qRegisterMetaType<QList<ConversationRecord>>();
    qRegisterMetaType<MessageRecord>();
    qRegisterMetaType<QList<MessageRecord>>();
    qRegisterMetaType<MessageDraft>();
    qRegisterMetaType<PresetRecord>();
    qRegisterMetaType<QList<PresetRecord>>();
    qRegisterMetaType<ModelEntry>();
    qRegisterMetaType<QList<ModelEntry>>();
    qRegisterMetaType<PerfRunRecord>();
    qRegisterMetaType<QList<PerfRunRecord>>();
    qRegisterMetaType<TokenSource>();
    qRegisterMetaType<GeneratedToken>();
    qRegisterMetaType<GenerationStats>();
    qRegisterMetaType<GenerationRequest>();
    qRegisterMetaType<EngineConfig>();
    qRegisterMetaType<ModelInfo>();
}
