// FakeBackend: a deterministic EngineBackend for app core tests. It "loads"
// any path not ending in ".bad", and replies "echo <last user text> #<n>"
// word by word ("*.oom" throws std::bad_alloc; GPU layers 999 fail). A test
// can make it hold after N tokens (until released or
// cancelled) and read back the prompts, generation parameters and engine
// configurations it was given. With speculative decoding asked for, tokens
// cycle through the origins Draft, Draft, Correction (and Bonus last).
#pragma once

#include "engine_backend.h"

#include <QMutex>
#include <QStringList>
#include <QThread>

#include <memory>
#include <new>

struct FakeBackendControl {
    std::atomic<int> holdAfterTokens{-1};  // >= 0: wait after this many tokens
    std::atomic<bool> released{false};
    std::atomic<int> calls{0};
    QMutex mutex;
    QList<std::vector<gb::ChatMessage>> prompts;  // every chat() call's messages
    gb::GenerateParams lastParams;
    QList<EngineConfig> loads;                     // every load()'s configuration (successful or not)
    QList<EngineConfig> reconfigures;

    QList<std::vector<gb::ChatMessage>> takePrompts()
    {
        QMutexLocker lock(&mutex);
        return std::exchange(prompts, {});
    }
};

class FakeBackend final : public EngineBackend {
public:
    explicit FakeBackend(std::shared_ptr<FakeBackendControl> control)
        : m_control(std::move(control))
    {
    }

    gb::Status load(const QString &path, const EngineConfig &config,
                    const std::function<bool(float)> &progress) override
    {
        {
            QMutexLocker lock(&m_control->mutex);
            m_control->loads.append(config);
        }
        for (int i = 1; i <= 4; ++i)
            if (progress && !progress(i / 4.0f))
                return gb::make_error(gb::ErrorCode::Cancelled, "cancelled");
        if (path.endsWith(QLatin1String(".bad")))
            return gb::make_error(gb::ErrorCode::InvalidFile, path.toStdString() + ": not a GGUF file (bad magic)");
        if (path.endsWith(QLatin1String(".oom")))
            throw std::bad_alloc();
        if (config.gpuLayers == 999)
            return gb::make_error(gb::ErrorCode::Unsupported, "partial offload (999 layers) is not implemented");
        m_path = path;
        m_config = config;
        return gb::Status::success();
    }
    gb::Status reconfigure(const EngineConfig &config) override
    {
        {
            QMutexLocker lock(&m_control->mutex);
            m_control->reconfigures.append(config);
        }
        m_config = config;
        return gb::Status::success();
    }
    void unload() override { m_path.clear(); }
    bool isLoaded() const override { return !m_path.isEmpty(); }
    ModelInfo modelInfo() const override
    {
        ModelInfo info;
        if (m_path.isEmpty())
            return info;
        info.path = m_path;
        info.description = QStringLiteral("fake 1M F32");
        info.architecture = QStringLiteral("fake");
        info.contextLength = m_config.contextLength;
        return info;
    }

    gb::Result<gb::GenerateResult> chat(const std::vector<gb::ChatMessage> &messages, const gb::GenerateParams &params,
                                        const gb::TokenCallback &onToken, const std::atomic<bool> *cancel) override
    {
        const int n = ++m_control->calls;
        {
            QMutexLocker lock(&m_control->mutex);
            m_control->prompts.append(messages);
            m_control->lastParams = params;
        }
        QString lastUser;
        for (const gb::ChatMessage &m : messages)
            if (m.role == "user")
                lastUser = QString::fromStdString(m.content);
        const QStringList words = (QStringLiteral("echo ") + lastUser + QStringLiteral(" #%1").arg(n)).split(' ');
        gb::GenerateResult r;
        r.n_prompt_tokens = int(messages.size()) * 10;
        r.stop = gb::StopReason::EndOfGeneration;
        for (int i = 0; i < words.size(); ++i) {
            if (i == m_control->holdAfterTokens.load())
                while (!m_control->released.load() && !(cancel && cancel->load()))
                    QThread::msleep(1);
            if (cancel && cancel->load()) {
                r.stop = gb::StopReason::Cancelled;
                break;
            }
            if (params.max_tokens > 0 && i >= params.max_tokens) {
                r.stop = gb::StopReason::MaxTokens;
                break;
            }
            gb::TokenEvent ev;
            ev.id = 100 + i;
            ev.text = ((i ? QStringLiteral(" ") : QString()) + words[i]).toStdString();
            ev.t_ms = i;
            ev.logprob = -0.5f;
            if (params.spec.method != gb::SpecMethod::None)
                ev.origin = i + 1 == words.size() ? gb::SpecOrigin::Bonus
                                                  : (i % 3 == 2 ? gb::SpecOrigin::Correction : gb::SpecOrigin::Draft);
            for (int k = 0; k < params.n_logprobs; ++k)
                ev.top.push_back(gb::TokenLogprob{ev.id + k, -0.5f - k});
            r.text += ev.text;
            ++r.n_generated;
            if (onToken && !onToken(ev)) {
                r.stop = gb::StopReason::Cancelled;
                break;
            }
        }
        if (params.spec.method != gb::SpecMethod::None) {
            r.spec.method = gb::spec_method_name(params.spec.method);
            r.spec.proposed = 2 * r.n_generated;
            r.spec.accepted = r.n_generated;
        }
        r.n_prompt_reused = params.reuse_prefix ? int(messages.size() - 1) * 10 : 0;  // earlier turns
        r.t_first_token_ms = 1.0;
        r.t_total_ms = 1.0 + std::max(0, r.n_generated - 1);  // 1 ms per token after the first
        return r;
    }
    std::string tokenText(gb::Token id) const override { return QStringLiteral("t%1").arg(id).toStdString(); }

private:
    std::shared_ptr<FakeBackendControl> m_control;
    QString m_path;
    EngineConfig m_config;
};
