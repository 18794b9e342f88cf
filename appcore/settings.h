// Settings: the typed app settings (engine set-up, sampling, default system
// prompt, system prompt presets) persisted through ChatStore. Values are
// validated and clamped; changed() says whether the change needs the model
// (or its session) to be reloaded.
#pragma once

#include "app_types.h"

#include <QHash>
#include <QObject>
#include <QSet>
#include <QVariant>

class ChatStore;

class Settings : public QObject {
    Q_OBJECT
public:
    enum class Key {
        // engine set-up (changing them needs a reload)
        Backend,        // "cpu" | "cuda"
        GpuLayers,      // -1: all; N: embedding + first N layers on the GPU, the rest on the CPU
        Threads,        // 0: all cores
        ContextLength,
        BatchSize,
        KvCacheType,    // "f16" | "q8_0"
        // per request
        Temperature,
        TopK,
        TopP,
        MinP,
        RepeatPenalty,
        Seed,           // 0: random
        MaxTokens,
        TopLogprobs,
        SystemPrompt,   // default for new conversations
        // app
        ModelPath,      // last model that loaded
        // runtime weight format (requantize on load; changing them needs a reload)
        WeightFormat,             // "file" | f16 | q8_0 | q6_k | q5_k | q4_k | q4_0 | q3_k | q2_k
        WeightFormatAttention,    // "base" (= WeightFormat) or as above
        WeightFormatFeedForward,
        WeightFormatEmbedding,
        WeightFormatOutput,
        // decoding (per request)
        SpecMethod,     // "none" | "draft" | "lookup" | "lookahead" | "selfdraft"
        SpecDraftMax,
        SpecNgram,
        SpecBranches,
        SpecAdaptive,   // bool
        SpecDraftModel, // GGUF path (method "draft")
        PrefixCache,    // bool
        Batching,       // bool: the continuous-batching engine (CPU, or CUDA with all layers on the GPU; no speculation); live
        PreciseDecode,  // bool: CUDA decode with 16-bit activations (CudaContextParams::precise_decode); Session path
    };
    Q_ENUM(Key)

    struct Descriptor {
        Key key;
        QString name;          // the key in the store
        QVariant defaultValue;
        QVariant minimum;      // numbers: clamp range (invalid: none)
        QVariant maximum;
        QStringList choices;   // strings: allowed values (empty: any); bools: none
        bool needsReload;
    };
    static const QList<Descriptor> &descriptors();
    static const Descriptor &descriptor(Key key);
    // Choices of the weight format settings (perClass: with "base" first).
    static QStringList weightFormats(bool perClass);
    static bool needsReload(Key key) { return descriptor(key).needsReload; }
    // Why replies cannot run on the continuous-batching engine with this
    // backend, speculative method, GPU layer count and decode precision ("" :
    // they can; CUDA batches on the GPU when every layer is there, -1 = all,
    // with 8-bit decode activations only).
    static QString batchingUnavailableReason(const QString &backend, const QString &specMethod, int gpuLayers = -1,
                                             bool preciseDecode = false);

    // store may be null (values then live in memory only).
    explicit Settings(ChatStore *store = nullptr, QObject *parent = nullptr);

    void load();  // reads the stored values; then loaded()
    bool isLoaded() const { return m_loaded; }

    QVariant value(Key key) const;
    // Validates (type, range, choices) and stores. Returns false (and changes
    // nothing) for a value of the wrong type or not among the choices;
    // numbers out of range are clamped.
    bool setValue(Key key, const QVariant &value);
    void resetToDefaults();

    int threads() const { return value(Key::Threads).toInt(); }
    int contextLength() const { return value(Key::ContextLength).toInt(); }
    QString backend() const { return value(Key::Backend).toString(); }
    double temperature() const { return value(Key::Temperature).toDouble(); }
    int maxTokens() const { return value(Key::MaxTokens).toInt(); }
    QString systemPrompt() const { return value(Key::SystemPrompt).toString(); }
    QString modelPath() const { return value(Key::ModelPath).toString(); }

    EngineConfig engineConfig() const;
    GenerationOptions generationOptions() const;
    // Per-conversation overrides (ConversationRecord::settings, keyed by name) on top.
    GenerationOptions generationOptions(const QJsonObject &overrides) const;

    // System prompt presets (kept in the store's presets table).
    QList<PresetRecord> presets() const { return m_presets; }
    void savePreset(const QString &name, const QString &systemPrompt, const QJsonObject &settings = {});
    void removePreset(qint64 presetId);

signals:
    void loaded();
    void changed(Settings::Key key, const QVariant &value, bool needsReload);
    void presetsChanged();

private:
    QVariant normalized(const Descriptor &d, const QVariant &value, bool *ok) const;

    ChatStore *m_store = nullptr;
    QHash<Key, QVariant> m_values;
    QList<PresetRecord> m_presets;
    QSet<quint64> m_requests;
    quint64 m_loadRequest = 0;
    bool m_loaded = false;
};

Q_DECLARE_METATYPE(Settings::Key)
