// The engine as the engine worker thread sees it: load a model with progress,
// (re)make its session, chat with streamed tokens. An interface so the app core
// and its tests can run on a fake engine; the real one is GlassboxBackend
// (EngineWorker::createGlassboxBackend()).
#pragma once

#include "app_types.h"

#include "glassbox/result.h"
#include "glassbox/session.h"

#include <atomic>
#include <functional>
#include <string>
#include <vector>

class EngineBackend {
public:
    virtual ~EngineBackend() = default;

    // Threading: every method is called on the engine worker thread only,
    // never concurrently.

    // Loads the model at path and makes a session with config. progress gets
    // [0, 1] and returns false to cancel. Required: on failure the previously
    // loaded model (if any) stays loaded and usable.
    virtual gb::Status load(const QString &path, const EngineConfig &config,
                            const std::function<bool(float)> &progress) = 0;
    // Makes a new session with config for the loaded model (context length,
    // threads, ...). On failure the old session stays.
    virtual gb::Status reconfigure(const EngineConfig &config) = 0;
    virtual void unload() = 0;
    virtual bool isLoaded() const = 0;
    virtual ModelInfo modelInfo() const = 0;

    // Generates the reply to messages. onToken runs on the calling thread for
    // every token; cancel is polled by the engine (set from any thread).
    virtual gb::Result<gb::GenerateResult> chat(const std::vector<gb::ChatMessage> &messages,
                                                const gb::GenerateParams &params, const gb::TokenCallback &onToken,
                                                const std::atomic<bool> *cancel) = 0;
    // Display text of a token (for top alternatives). Optional: "" if unknown.
    virtual std::string tokenText(gb::Token id) const = 0;
};
