// A performance run (an inspector snapshot) as JSON (for the app's SQLite
// perf_runs table and for files) and as CSV tables (tokens, engine steps).
#pragma once

#include "snapshot.h"

#include <QByteArray>
#include <QJsonObject>
#include <QString>

namespace gb::ui {

// Requests (stats, phases, speculative summary, every token), the KV cache
// steps and per-request prefix hits, and the model's name. maxTokens caps the
// tokens written per request (0: all).
QJsonObject runToJson(const InspectorSnapshot & snapshot, size_t maxTokens = 0);

// One row per generated token: request,index,t_ms,itl_ms,token_id,logprob,p,entropy,origin,text
QByteArray tokensCsv(const InspectorSnapshot & snapshot);
// One row per engine step: step,t_ms,prefill,decode,running,waiting,pages_used,pages_shared,pages_cached,pages_free,evictions,composition
QByteArray stepsCsv(const InspectorSnapshot & snapshot);

// Writes path (JSON) or, for a path ending in .csv, the tokens table there and
// the steps table next to it (NAME.steps.csv). Returns "" or an error message.
QString exportRun(const InspectorSnapshot & snapshot, const QString & path);

}  // namespace gb::ui
