// EngineWorker: runs the engine (an EngineBackend: the model and its session)
// on its own QThread. Call it from the thread that owns it (the GUI thread);
// every call returns at once. Results come back as signals on the owner's
// thread. Requests start in the order made; replies on the batching engine
// run concurrently (one engine step per event on the engine thread, so a new
// request joins the running batch), everything else waits for them and runs
// alone. Cancellation sets an atomic flag the engine polls, so it takes
// effect within a token (or a prefill chunk).
#pragma once

#include "app_types.h"
#include "engine_backend.h"

#include <QHash>
#include <QObject>
#include <QStringList>

#include <atomic>
#include <deque>
#include <functional>
#include <memory>

class QThread;

// Which engine backends this machine can run (EngineWorker::probeBackends()).
struct BackendReport {
    bool cudaAvailable = false;
    QString cudaMessage;      // why not, or a summary
    QStringList cudaDevices;
    QStringList kvCacheTypes;  // KV cache types this build of the engine keeps ("f16", "q8_0")
};

class EngineWorker : public QObject {
    Q_OBJECT
public:
    // The app passes createGlassboxBackend(); tests may pass a fake. (The real
    // engine is only linked in where createGlassboxBackend() is called.)
    explicit EngineWorker(std::unique_ptr<EngineBackend> backend, QObject *parent = nullptr);
    ~EngineWorker() override;  // cancels everything and joins the thread

    static std::unique_ptr<EngineBackend> createGlassboxBackend();
    // Asks the CUDA runtime (or the stub of a CPU-only build); may take a
    // moment on a machine with a GPU: call it off the GUI thread.
    static BackendReport probeBackends();

    // Loads a model (replacing the current one only when the load succeeds).
    quint64 loadModel(const QString &path, const EngineConfig &config);
    void cancelLoad();  // every load not finished yet
    void cancelLoad(quint64 requestId);
    // New session settings for the loaded model (context length, threads, ...).
    quint64 reconfigure(const EngineConfig &config);
    quint64 unloadModel();

    quint64 generate(const GenerationRequest &request);
    // Watches the batching engine's KV cache on the engine thread (the
    // inspector); applies from the next request on. {} : none.
    void setKvObserver(KvObserver observer);
    void cancel(quint64 requestId);  // no-op for unknown / finished requests
    void cancelAll();

    // State as known on the owner's thread (updated by the signals below).
    bool isModelLoaded() const { return m_modelLoaded; }
    ModelInfo modelInfo() const { return m_modelInfo; }
    bool isLoading() const { return m_loadsInFlight > 0; }
    bool isGenerating(quint64 requestId) const { return m_generations.contains(requestId); }
    int pendingGenerations() const { return int(m_generations.size()); }

signals:
    void modelLoadStarted(quint64 requestId, const QString &path);
    void modelLoadProgress(quint64 requestId, double progress);
    void modelLoaded(quint64 requestId, const ModelInfo &info);
    void modelLoadFailed(quint64 requestId, const QString &message);
    void modelUnloaded(quint64 requestId);

    void generationStarted(quint64 requestId, qint64 conversationId);
    void tokenGenerated(quint64 requestId, const GeneratedToken &token);
    // Also for cancelled requests (stats.stopReason == "cancelled", text so far).
    void generationFinished(quint64 requestId, const GenerationStats &stats, const QString &text);
    void generationFailed(quint64 requestId, const QString &message);

private:
    using Flag = std::shared_ptr<std::atomic<bool>>;
    template <typename Fn>
    void post(Fn fn);
    // A job for the engine thread's FIFO queue: fn() returns false when it
    // cannot run yet (it needs the engine while the batching engine runs
    // chats); it and everything after it wait for them.
    template <typename Fn>
    void enqueue(Fn fn);
    void drainJobs();
    void runLoad(quint64 requestId, const QString &path, const EngineConfig &config, const Flag &cancel);
    bool runGenerate(quint64 requestId, const GenerationRequest &request, const Flag &cancel, qint64 postedNs);
    void finishLoad(quint64 requestId);

    QThread *m_thread = nullptr;
    QObject *m_context = nullptr;                  // lives on m_thread; runs posted jobs
    std::unique_ptr<EngineBackend> m_backend;      // used on m_thread only
    std::deque<std::function<bool()>> m_jobs;      // m_thread: jobs waiting for the running chats
    bool m_pumpScheduled = false;                  // m_thread: a batching step is posted
    quint64 m_nextRequestId = 0;
    QHash<quint64, Flag> m_generations;            // owner thread: requests not finished
    QHash<quint64, Flag> m_loads;
    int m_loadsInFlight = 0;
    bool m_modelLoaded = false;
    ModelInfo m_modelInfo;
};
