// The engine as the engine worker thread sees it: load a model with progress,
// (re)make its session, chat with streamed tokens (one at a time, or several
// at once on a batching engine). An interface so the app core
// and its tests can run on a fake engine; the real one is GlassboxBackend
// (EngineWorker::createGlassboxBackend()).
#pragma once

#include "app_types.h"

#include "glassbox/result.h"
#include "glassbox/session.h"

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace gb::kv {
class Scheduler;
struct StepPlan;
}  // namespace gb::kv

// Watches the continuous-batching engine's paged-KV metadata (for the
// inspector). Called on the engine worker thread, between the engine's
// structures' changes: read them during the call only, never keep references.
struct KvObserver {
    // After each scheduling step (before its tokens are committed).
    std::function<void(const gb::kv::Scheduler &, const gb::kv::StepPlan &)> onStep;
    // A request was submitted: its engine request id and a label.
    std::function<void(int64_t, const std::string &)> onSubmit;
    // The engine went idle (the last step's commit is in the structures now).
    std::function<void(const gb::kv::Scheduler &)> onIdle;
    // The tokenizer of the model the next steps run (token text on the tree's
    // edges); valid until the next onModel call (null: none).
    std::function<void(const gb::Tokenizer *)> onModel;
};

// Per request: which engine path the caller wants and how the inspector names it.
struct ChatRequestOptions {
    bool batching = true;  // the BatchEngine where the backend can (CPU, no speculation)
    std::string label;     // "chat 3, request 7"
};

// What the backend did for the last chat() besides its GenerateResult.
struct ChatExtras {
    bool batched = false;         // ran on the BatchEngine
    double queueMs = 0.0;         // from submit to admission (batch path)
    int64_t engineRequestId = -1; // the BatchEngine's request id
};

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

    // Optional (the defaults do nothing): the options of the next chat(), what
    // the last chat() did, and an observer of the batching engine's KV cache.
    virtual void setChatRequestOptions(const ChatRequestOptions &) {}
    virtual ChatExtras lastChatExtras() const { return {}; }
    virtual void setKvObserver(KvObserver) {}

    // Concurrent chats (the batching engine), all on the engine worker thread:
    // canStartConcurrent says whether startChat can start this request now,
    // next to the chats already running (setChatRequestOptions first);
    // startChat queues it and returns; each stepChats() runs one engine step
    // for all of them (onToken as their tokens come, onDone once each ends)
    // and returns whether some still run. The backend does nothing else
    // (load, a Session chat) while hasActiveChats().
    using ChatDone = std::function<void(gb::Result<gb::GenerateResult>, const ChatExtras &)>;
    virtual bool canStartConcurrent(const gb::GenerateParams &) const { return false; }
    virtual gb::Status startChat(const std::vector<gb::ChatMessage> &, const gb::GenerateParams &,
                                 const gb::TokenCallback &, const std::atomic<bool> *, ChatDone)
    {
        return gb::make_error(gb::ErrorCode::Unsupported, "this engine backend runs one chat at a time");
    }
    virtual bool stepChats() { return false; }
    virtual bool hasActiveChats() const { return false; }
};
