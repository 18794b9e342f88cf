// Settings: descriptor table, validation, persistence through ChatStore.
#include "settings.h"

#include "chat_store.h"

#include <QJsonValue>

#include <algorithm>
#include <cmath>

namespace {

Settings::Descriptor make(Settings::Key key, const char *name, QVariant def, QVariant min, QVariant max,
                          bool reload, QStringList choices = {})
{
    return Settings::Descriptor{key, QString::fromLatin1(name), std::move(def), std::move(min), std::move(max),
                                std::move(choices), reload};
}

}  // namespace

QStringList Settings::weightFormats(bool perClass)
{
    QStringList f = {"file", "f16", "q8_0", "q6_k", "q5_k", "q4_k", "q4_0", "q3_k", "q2_k"};
    if (perClass)
        f.prepend(QStringLiteral("base"));
    return f;
}

const QList<Settings::Descriptor> &Settings::descriptors()
{
    using K = Settings::Key;
    static const QList<Descriptor> table = {
        make(K::Backend, "engine/backend", QStringLiteral("cpu"), {}, {}, true, {"cpu", "cuda"}),
        make(K::GpuLayers, "engine/gpu_layers", -1, -1, 1000, true),
        make(K::Threads, "engine/threads", 0, 0, 1024, true),
        make(K::ContextLength, "engine/context_length", 4096, 256, 1 << 20, true),
        make(K::BatchSize, "engine/batch_size", 512, 1, 8192, true),
        make(K::KvCacheType, "engine/kv_cache_type", QStringLiteral("f16"), {}, {}, true, {"f16", "q8_0"}),
        make(K::Temperature, "sampling/temperature", 0.8, 0.0, 5.0, false),
        make(K::TopK, "sampling/top_k", 40, 0, 1 << 20, false),
        make(K::TopP, "sampling/top_p", 0.95, 0.0, 1.0, false),
        make(K::MinP, "sampling/min_p", 0.05, 0.0, 1.0, false),
        make(K::RepeatPenalty, "sampling/repeat_penalty", 1.0, 0.0, 10.0, false),
        make(K::Seed, "sampling/seed", 0, 0, QVariant(qint64(1) << 53), false),
        make(K::MaxTokens, "sampling/max_tokens", 512, 0, 1 << 20, false),
        make(K::TopLogprobs, "sampling/top_logprobs", 5, 0, 20, false),
        make(K::SystemPrompt, "chat/system_prompt", QString(), {}, {}, false),
        make(K::ModelPath, "app/model_path", QString(), {}, {}, false),
        make(K::WeightFormat, "engine/weight_format", QStringLiteral("file"), {}, {}, true, weightFormats(false)),
        make(K::WeightFormatAttention, "engine/weight_format_attention", QStringLiteral("base"), {}, {}, true,
             weightFormats(true)),
        make(K::WeightFormatFeedForward, "engine/weight_format_ffn", QStringLiteral("base"), {}, {}, true,
             weightFormats(true)),
        make(K::WeightFormatEmbedding, "engine/weight_format_embedding", QStringLiteral("base"), {}, {}, true,
             weightFormats(true)),
        make(K::WeightFormatOutput, "engine/weight_format_output", QStringLiteral("base"), {}, {}, true,
             weightFormats(true)),
        make(K::SpecMethod, "decoding/spec_method", QStringLiteral("none"), {}, {}, false,
             {"none", "draft", "lookup", "lookahead", "selfdraft"}),
        make(K::SpecDraftMax, "decoding/spec_draft_max", 8, 1, 64, false),
        make(K::SpecNgram, "decoding/spec_ngram", 3, 1, 8, false),
        make(K::SpecBranches, "decoding/spec_branches", 3, 1, 8, false),
        make(K::SpecAdaptive, "decoding/spec_adaptive", true, {}, {}, false),
        make(K::SpecDraftModel, "decoding/spec_draft_model", QString(), {}, {}, false),
        make(K::PrefixCache, "decoding/prefix_cache", true, {}, {}, false),
        make(K::Batching, "engine/batching", true, {}, {}, false),
        make(K::PreciseDecode, "engine/precise_decode", false, {}, {}, true),
    };
    return table;
}

QString Settings::batchingUnavailableReason(const QString &backend, const QString &specMethod, int gpuLayers,
                                           bool preciseDecode)
{
    if (backend == QLatin1String("cuda") && gpuLayers >= 0)
        return tr("Partial offload (GPU layers set to %1): when the model has more layers than that, the layers "
                  "left on the CPU keep their KV cache in host memory, which the GPU batching engine does not "
                  "handle, so replies run one at a time on the one-sequence engine (its prefix reuse covers the "
                  "last request only). Set GPU layers to \"all\" for batching and the prefix tree on the GPU.")
            .arg(gpuLayers);
    if (!specMethod.isEmpty() && specMethod != QLatin1String("none"))
        return tr("Speculative decoding runs on the one-sequence engine: while it is on, replies do not use "
                  "the batching engine or its prefix tree.");
    if (backend == QLatin1String("cuda") && preciseDecode)
        return tr("Precise decode (16-bit activations) runs on the one-sequence engine: the GPU batching "
                  "engine decodes with 8-bit activations only, so while it is on, replies do not use the "
                  "batching engine or its prefix tree.");
    return {};
}

const Settings::Descriptor &Settings::descriptor(Key key)
{
    const QList<Descriptor> &table = descriptors();
    // NOTE: the table lists every Key in enum order.
    Q_ASSERT(table.at(int(key)).key == key);
    return table.at(int(key));
}

Settings::Settings(ChatStore *store, QObject *parent)
    : QObject(parent)
    , m_store(store)
{
    qRegisterMetaType<Settings::Key>();
    if (!m_store)
        return;
    connect(m_store, &ChatStore::settingsLoaded, this, [this](quint64 req, const QVariantMap &stored) {
        if (req != m_loadRequest)
            return;
        for (const Descriptor &d : descriptors()) {
            if (!stored.contains(d.name))
                continue;
            bool ok = false;
            const QVariant v = normalized(d, stored.value(d.name), &ok);
            if (ok && v != value(d.key)) {
                m_values.insert(d.key, v);
                emit changed(d.key, v, d.needsReload);
            }
        }
        m_loaded = true;
        emit loaded();
    });
    connect(m_store, &ChatStore::presetsListed, this, [this](quint64 req, const QList<PresetRecord> &presets) {
        if (!m_requests.remove(req))
            return;
        m_presets = presets;
        emit presetsChanged();
    });
    auto relist = [this](quint64 req) {
        if (m_requests.remove(req))
            m_requests.insert(m_store->listPresets());
    };
    connect(m_store, &ChatStore::presetSaved, this, [relist](quint64 req, const PresetRecord &) { relist(req); });
    connect(m_store, &ChatStore::presetDeleted, this, [relist](quint64 req, qint64) { relist(req); });
    connect(m_store, &ChatStore::errorOccurred, this, [this](quint64 req, ChatStore::ErrorKind, const QString &) {
        // The error itself is reported by whoever shows store errors (ChatController).
        m_requests.remove(req);
        if (req == m_loadRequest && !m_loaded) {
            m_loaded = true;  // defaults stay in effect
            emit loaded();
        }
    });
}

void Settings::load()
{
    if (!m_store) {
        m_loaded = true;
        emit loaded();
        return;
    }
    m_loadRequest = m_store->loadSettings();
    m_requests.insert(m_store->listPresets());
}

QVariant Settings::value(Key key) const
{
    const auto it = m_values.constFind(key);
    return it != m_values.constEnd() ? *it : descriptor(key).defaultValue;
}

QVariant Settings::normalized(const Descriptor &d, const QVariant &value, bool *ok) const
{
    *ok = false;
    const QMetaType type = d.defaultValue.metaType();
    if (type.id() == QMetaType::QString) {
        if (!value.canConvert<QString>() || value.typeId() == QMetaType::QVariantList)
            return {};
        const QString s = value.toString();
        if (!d.choices.isEmpty() && !d.choices.contains(s))
            return {};
        *ok = true;
        return s;
    }
    if (type.id() == QMetaType::Bool) {
        if (value.typeId() == QMetaType::Bool) {
            *ok = true;
            return value.toBool();
        }
        const QString s = value.toString().trimmed().toLower();
        if (s == QLatin1String("true") || s == QLatin1String("1") || s == QLatin1String("false") || s == QLatin1String("0")) {
            *ok = true;
            return s == QLatin1String("true") || s == QLatin1String("1");
        }
        return {};
    }
    bool numberOk = false;
    if (type.id() == QMetaType::Double) {
        double v = value.toDouble(&numberOk);
        if (!numberOk || std::isnan(v))
            return {};
        v = std::clamp(v, d.minimum.toDouble(), d.maximum.toDouble());
        *ok = true;
        return v;
    }
    const bool isFloat = value.typeId() == QMetaType::Double || value.typeId() == QMetaType::Float;
    qint64 v = isFloat ? 0 : value.toLongLong(&numberOk);
    if (!numberOk) {  // "8.0" or 8.0 from JSON; 2.5 is refused
        const double dv = value.toDouble(&numberOk);
        if (!numberOk || dv != std::floor(dv))
            return {};
        v = qint64(dv);
    }
    v = std::clamp(v, d.minimum.toLongLong(), d.maximum.toLongLong());
    *ok = true;
    return d.key == Key::Seed ? QVariant(v) : QVariant(int(v));
}

bool Settings::setValue(Key key, const QVariant &value)
{
    const Descriptor &d = descriptor(key);
    bool ok = false;
    const QVariant v = normalized(d, value, &ok);
    if (!ok)
        return false;
    if (v == this->value(key))
        return true;
    m_values.insert(key, v);
    if (m_store)
        m_store->setSetting(d.name, v);
    emit changed(key, v, d.needsReload);
    return true;
}

void Settings::resetToDefaults()
{
    for (const Descriptor &d : descriptors())
        setValue(d.key, d.defaultValue);
}

EngineConfig Settings::engineConfig() const
{
    EngineConfig c;
    c.backend = value(Key::Backend).toString();
    c.gpuLayers = value(Key::GpuLayers).toInt();
    c.preciseDecode = value(Key::PreciseDecode).toBool();
    c.threads = value(Key::Threads).toInt();
    c.contextLength = value(Key::ContextLength).toInt();
    c.batchSize = value(Key::BatchSize).toInt();
    c.kvCacheType = value(Key::KvCacheType).toString();
    c.weightFormat = value(Key::WeightFormat).toString();
    c.weightFormatAttention = value(Key::WeightFormatAttention).toString();
    c.weightFormatFeedForward = value(Key::WeightFormatFeedForward).toString();
    c.weightFormatEmbedding = value(Key::WeightFormatEmbedding).toString();
    c.weightFormatOutput = value(Key::WeightFormatOutput).toString();
    return c;
}

GenerationOptions Settings::generationOptions() const
{
    return generationOptions(QJsonObject{});
}

GenerationOptions Settings::generationOptions(const QJsonObject &overrides) const
{
    auto get = [&](Key key) {
        const Descriptor &d = descriptor(key);
        if (overrides.contains(d.name)) {
            bool ok = false;
            const QVariant v = normalized(d, overrides.value(d.name).toVariant(), &ok);
            if (ok)
                return v;
        }
        return value(key);
    };
    GenerationOptions o;
    o.temperature = get(Key::Temperature).toDouble();
    o.topK = get(Key::TopK).toInt();
    o.topP = get(Key::TopP).toDouble();
    o.minP = get(Key::MinP).toDouble();
    o.repeatPenalty = get(Key::RepeatPenalty).toDouble();
    o.seed = get(Key::Seed).toULongLong();
    o.maxTokens = get(Key::MaxTokens).toInt();
    o.topLogprobs = get(Key::TopLogprobs).toInt();
    o.specMethod = get(Key::SpecMethod).toString();
    o.specDraftMax = get(Key::SpecDraftMax).toInt();
    o.specNgram = get(Key::SpecNgram).toInt();
    o.specBranches = get(Key::SpecBranches).toInt();
    o.specAdaptive = get(Key::SpecAdaptive).toBool();
    o.specDraftModel = get(Key::SpecDraftModel).toString();
    o.prefixCache = get(Key::PrefixCache).toBool();
    o.batching = get(Key::Batching).toBool();
    return o;
}

void Settings::savePreset(const QString &name, const QString &systemPrompt, const QJsonObject &settings)
{
    if (m_store)
        m_requests.insert(m_store->savePreset(PresetRecord{0, name, systemPrompt, settings}));
}

void Settings::removePreset(qint64 presetId)
{
    if (m_store)
        m_requests.insert(m_store->deletePreset(presetId));
}
