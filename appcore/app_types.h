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

// Where a generated token came from (speculative decoding; gb::SpecOrigin's order).
enum class TokenSource : quint8 {
    Target,      // a plain decoding step
    Draft,       // a drafted token the model accepted
    Correction,  // the model's own token after it rejected a draft token
    Bonus,       // the model's extra token after a fully accepted draft
};
QString tokenSourceName(TokenSource source);

struct GeneratedToken {
    int tokenId = -1;
    QString text;        // newly completed text (may be empty while UTF-8 or a stop string is held back)
    float logprob = 0.0f;
    QList<TokenAlternative> top;
    double tMs = 0.0;    // since the request started
    TokenSource source = TokenSource::Target;
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
    // Speculative decoding ("" or "none": off).
    QString specMethod;
    qint64 specProposed = 0;     // draft tokens offered
    qint64 specAccepted = 0;     // ... and accepted
    qint64 specSteps = 0;        // model steps (each emits >= 1 token)
    qint64 specDraftTokens = 0;  // emitted tokens that were accepted drafts
    std::shared_ptr<const gb::SpecStats> spec;  // speculative decoding statistics (null when off); not stored
    // Which engine path served it: "batch" (the continuous-batching engine with
    // the paged KV cache and prefix tree) or "session" (one sequence).
    QString enginePath;
    double queueMs = 0.0;        // waited before the engine started it (worker queue + engine admission)
    qint64 engineRequestId = -1; // the BatchEngine's request id (batch path), for the inspector; not stored

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
    // Speculative decoding (gb::SpecConfig).
    QString specMethod = QStringLiteral("none");  // none | draft | lookup | lookahead | selfdraft
    int specDraftMax = 8;      // longest draft
    int specNgram = 3;         // n-gram size (lookup, lookahead)
    int specBranches = 3;      // continuations verified as a tree (lookup) / candidates (lookahead)
    bool specAdaptive = true;  // adapt the draft length and turn off when slower
    QString specDraftModel;    // draft: the draft model's GGUF file
    bool prefixCache = true;   // reuse the K/V of the prompt prefix shared with the last request
    // Run on the continuous-batching engine (paged KV cache, prefix tree) where
    // it can: the CPU backend without speculative decoding; else on the Session.
    bool batching = true;
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
    int gpuLayers = -1;        // CUDA: layers on the GPU, -1 all (the rest run on the CPU)
    bool preciseDecode = false;  // CUDA: decode with 16-bit activations (Session path only)
    QString kvCacheType = QStringLiteral("f16");  // "f16" | "q8_0"
    // Runtime weight format (requantize on load): "file" (as stored) or a type
    // name (f16, q8_0, q6_k, q5_k, q4_k, q4_0, q3_k, q2_k); per tensor class
    // "base" follows weightFormat.
    QString weightFormat = QStringLiteral("file");
    QString weightFormatAttention = QStringLiteral("base");
    QString weightFormatFeedForward = QStringLiteral("base");
    QString weightFormatEmbedding = QStringLiteral("base");
    QString weightFormatOutput = QStringLiteral("base");
    QString requantizeDir;     // where requantized copies are kept ("" : the system cache folder)
    QString chatTemplateOverride;
    bool requantizes() const;  // any weight format other than as in the file
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
    QString backend;        // "cpu" | "cuda": where the session runs
    QString weightFormat;   // "as in the file" or the requantization plan ("base=Q8_0 attn=Q4_K")
    QString loadedFile;     // the file the weights come from (a requantized copy or path)
    quint64 fileBytes = 0;  // size of loadedFile
    quint64 weightBytes = 0;  // tensor data of the loaded weights
    quint64 kvBytes = 0;    // the session's KV cache
    QString kvCacheType;    // as applied
};

Q_DECLARE_METATYPE(ConversationRecord)
Q_DECLARE_METATYPE(MessageRecord)
Q_DECLARE_METATYPE(MessageDraft)
Q_DECLARE_METATYPE(PresetRecord)
Q_DECLARE_METATYPE(ModelEntry)
Q_DECLARE_METATYPE(PerfRunRecord)
Q_DECLARE_METATYPE(TokenSource)
Q_DECLARE_METATYPE(GeneratedToken)
Q_DECLARE_METATYPE(GenerationStats)
Q_DECLARE_METATYPE(GenerationRequest)
Q_DECLARE_METATYPE(EngineConfig)
Q_DECLARE_METATYPE(ModelInfo)

// Registers the types above (and their QLists) for queued connections.
void registerAppCoreMetaTypes();
