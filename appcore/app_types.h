// Plain value types shared by the app core and the UI: stored records
// (conversations, message tree nodes, presets, model entries, perf runs) and
// engine events (tokens, stats). All are cheap to copy and travel through
// queued signals (registered with registerAppCoreMetaTypes()).
#pragma once

#include <QDateTime>
#include <QJsonObject>
#include <QList>
#include <QMetaType>
#include <QString>
#include <QStringList>

#include <memory>

namespace gb { struct SpecStats; }

// ---- stored records --------------------------------------------------------

struct ConversationRecord {
    qint64 id = 0;
    QString title;
    bool pinned = false;
    QDateTime createdAt;
    QDateTime updatedAt;
    QString systemPrompt;
    QJsonObject settings;  // per-conversation overrides (sampling etc.)
    QString snippet;       // search results only: text around the first hit
};

enum class MessageState {
    Complete,     // written in full
    Streaming,    // a reply being generated right now
    Interrupted,  // was Streaming when the app died (fixed up on the next open)
    Cancelled,    // stopped by the user; content is what had arrived
    Failed,       // generation failed; stats["error"] says why
};
QString messageStateName(MessageState state);
MessageState messageStateFromName(const QString &name);

struct MessageRecord {
    qint64 id = 0;
    qint64 conversationId = 0;
    qint64 parentId = 0;  // 0: a root message
    QString role;         // "system" | "user" | "assistant"
    QString content;
    QDateTime createdAt;
    MessageState state = MessageState::Complete;
    QJsonObject stats;    // tokens, tokens_per_s, ttft_ms, prefix_hit, stop, ...
    int siblingIndex = 0; // position among the children of parentId (by id)
    int siblingCount = 1;
};

// A message to append (the store fills in ids, parent and time).
struct MessageDraft {
    QString role;
    QString content;
    MessageState state = MessageState::Complete;
    QJsonObject stats;
};

struct PresetRecord {
    qint64 id = 0;
    QString name;
    QString systemPrompt;
    QJsonObject settings;
};

struct ModelEntry {
    qint64 id = 0;
    QString path;
    QJsonObject metadata;  // architecture, parameters, quantization, ...
    QDateTime addedAt;
};

struct PerfRunRecord {
    qint64 id = 0;
    QDateTime createdAt;
    QJsonObject data;
};

// ---- engine values ---------------------------------------------------------

struct ChatTurn {
    QString role;
    QString content;
};

struct TokenAlternative {
    int tokenId = -1;
    QString text;
    float logprob = 0.0f;
};

struct GeneratedToken {
    int tokenId = -1;
    QString text;        // newly completed text (may be empty while UTF-8 or a stop string is held back)
    float logprob = 0.0f;
    QList<TokenAlternative> top;
    double tMs = 0.0;    // since the request started
    int origin = 0;      // gb::SpecOrigin: 0 plain, 1 accepted draft, 2 correction, 3 bonus
};

struct GenerationStats {
    int promptTokens = 0;
    int promptTokensReused = 0;  // served from the prefix cache
    int generatedTokens = 0;
    int droppedMessages = 0;
    double promptMs = 0.0;
    double firstTokenMs = 0.0;   // time to first token
    double totalMs = 0.0;
    double tokensPerSecond = 0.0;
    double promptTokensPerSecond = 0.0;
    QString stopReason;          // "eog", "max_tokens", "stop_string", "context_full", "cancelled"
    QString modelDescription;
    std::shared_ptr<const gb::SpecStats> spec;  // speculative decoding statistics (null when off); not stored

    QJsonObject toJson() const;
    static GenerationStats fromJson(const QJsonObject &json);
};

// Sampling and decoding options of one request.
struct GenerationOptions {
    double temperature = 0.8;  // <= 0: greedy
    int topK = 40;
    double topP = 0.95;
    double minP = 0.05;
    double repeatPenalty = 1.0;
    quint64 seed = 0;          // 0: random
    int maxTokens = 512;
    int topLogprobs = 5;       // alternatives per token
    QStringList stop;
};

struct GenerationRequest {
    qint64 conversationId = 0;
    qint64 messageId = 0;      // the assistant message being written (0 if none)
    QString systemPrompt;      // prepended as a "system" turn when not empty
    QList<ChatTurn> messages;
    GenerationOptions options;
};

// How the engine is set up for a model; changing most of these needs a reload.
struct EngineConfig {
    int threads = 0;           // 0: all cores
    int contextLength = 4096;
    int batchSize = 512;
    QString backend = QStringLiteral("cpu");  // "cpu" | "cuda"
    int gpuLayers = 0;
    QString kvCacheType = QStringLiteral("f16");  // placeholder until the engine grows KV types
    QString chatTemplateOverride;
    bool operator==(const EngineConfig &) const = default;
};

struct ModelInfo {
    QString path;
    QString description;   // "gemma3 270M Q4_K_M"
    QString architecture;
    quint64 parameters = 0;
    int trainContextLength = 0;
    int contextLength = 0;  // of the session
    QString chatTemplateWarning;
};

Q_DECLARE_METATYPE(ConversationRecord)
Q_DECLARE_METATYPE(MessageRecord)
Q_DECLARE_METATYPE(MessageDraft)
Q_DECLARE_METATYPE(PresetRecord)
Q_DECLARE_METATYPE(ModelEntry)
Q_DECLARE_METATYPE(PerfRunRecord)
Q_DECLARE_METATYPE(GeneratedToken)
Q_DECLARE_METATYPE(GenerationStats)
Q_DECLARE_METATYPE(GenerationRequest)
Q_DECLARE_METATYPE(EngineConfig)
Q_DECLARE_METATYPE(ModelInfo)

// Registers the types above (and their QLists) for queued connections.
void registerAppCoreMetaTypes();
