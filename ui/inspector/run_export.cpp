// Run export: InspectorSnapshot -> JSON / CSV.
#include "run_export.h"

#include "kv_trace.h"

#include <QFile>
#include <QDir>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>

#include <cmath>

namespace gb::ui {

namespace {
QByteArray csvField(const std::string & s) {
    QByteArray f = QByteArray::fromStdString(s);
    if (f.contains(',') || f.contains('"') || f.contains('\n') || f.contains('\r')) {
        f.replace("\"", "\"\"");
        f = "\"" + f + "\"";
    }
    return f;
}
QByteArray num(double v) { return QByteArray::number(v, 'g', 10); }
}  // namespace

QJsonObject runToJson(const InspectorSnapshot & snap, size_t maxTokens) {
    QJsonObject run;
    run["kind"] = "glassbox inspector run";
    run["version"] = 1;
    if (snap.model) {
        run["model"] = QString::fromStdString(snap.model->name);
        run["architecture"] = QString::fromStdString(snap.model->architecture);
    }
    QJsonArray requests;
    for (const auto & rp : snap.requests) {
        const RequestTrace & r = *rp;
        QJsonObject o;
        o["id"] = qint64(r.id);
        o["label"] = QString::fromStdString(r.label);
        o["finished"] = r.finished;
        o["stop"] = QString::fromStdString(r.stopReason);
        o["prompt_tokens"] = r.nPromptTokens;
        o["prompt_reused"] = r.nPromptReused;
        o["queue_ms"] = r.tQueueMs;
        o["prefill_ms"] = r.tPromptMs;
        o["ttft_ms"] = r.latency.ttftMs;
        o["total_ms"] = r.tTotalMs;
        o["tokens_per_s"] = r.latency.tokensPerS;
        o["itl_p50_ms"] = r.latency.p50Ms;
        o["itl_p95_ms"] = r.latency.p95Ms;
        o["itl_p99_ms"] = r.latency.p99Ms;
        o["mean_logprob"] = r.tokenStats.meanLogprob;
        if (!r.promptKey.empty()) o["prompt_key"] = QString::fromStdString(r.promptKey);
        if (const SpecSummary * s = r.specSummary.get()) {
            QJsonObject sp;
            sp["method"] = QString::fromStdString(s->method);
            sp["steps"] = qint64(s->steps);
            sp["spec_steps"] = qint64(s->specSteps);
            sp["proposed"] = qint64(s->proposed);
            sp["accepted"] = qint64(s->accepted);
            sp["emitted"] = qint64(s->emitted);
            sp["acceptance_rate"] = s->acceptanceRate;
            sp["mean_accepted_len"] = s->meanAcceptedLen;
            sp["tokens_per_s"] = s->tokensPerS;
            sp["plain_tokens_per_s"] = s->plainTokensPerS;
            QJsonArray bypos;
            for (double a : s->acceptanceByPosition) bypos.append(a);
            sp["acceptance_by_position"] = bypos;
            o["spec"] = sp;
        }
        QJsonArray phases;
        for (const PhaseSpan & p : r.phases)
            if (p.phase != Phase::Decode) phases.append(QJsonArray{phaseName(p.phase), p.t0Ms, p.t1Ms, p.nTokens});
        o["phases"] = phases;  // decode spans are implied by the token times
        QJsonArray tokens;
        const size_t n = maxTokens ? std::min(maxTokens, r.tokens.size()) : r.tokens.size();
        for (size_t i = 0; i < n; ++i) {
            const TokenSample & t = r.tokens[i];
            tokens.append(QJsonArray{t.id, t.tMs, double(t.logprob), double(t.entropy), int(t.origin), QString::fromStdString(t.text)});
        }
        o["tokens"] = tokens;  // [id, t_ms, logprob, entropy, origin, text]
        requests.append(o);
    }
    run["requests"] = requests;
    if (snap.kv) {
        const KvTrace & kv = *snap.kv;
        QJsonObject k;
        k["source"] = QString::fromStdString(kv.source);
        k["pages"] = kv.nPages;
        k["page_size"] = kv.pageSize;
        k["evictions"] = qint64(kv.evictionsTotal);
        k["tree_nodes"] = qint64(kv.treeNodesTotal);
        QJsonArray reqs;
        for (const KvRequest & r : kv.requests)
            reqs.append(QJsonObject{{"id", qint64(r.id)}, {"label", QString::fromStdString(r.label)}, {"prompt_tokens", r.promptTokens},
                                    {"prefix_hit_tokens", r.prefixHitTokens}, {"generated", r.generated},
                                    {"preemptions", r.preemptions}, {"state", QString::fromStdString(r.state)}});
        k["requests"] = reqs;
        QJsonArray steps;  // [step, t_ms, prefill, decode, running, waiting, used, shared, cached, free, evictions]
        for (size_t i = 0; i < kv.steps.size(); ++i) {
            const KvStep & s = kv.steps[i];
            steps.append(QJsonArray{qint64(s.step), s.tMs, s.nPrefill, s.nDecode, s.nRunning, s.nWaiting, s.pagesUsed, s.pagesShared,
                                    s.pagesCached, s.pagesFree, s.evictions});
        }
        k["steps"] = steps;
        run["kv"] = k;
    }
    return run;
}

QByteArray tokensCsv(const InspectorSnapshot & snap) {
    QByteArray out = "request,index,t_ms,itl_ms,token_id,logprob,p,entropy,origin,text\n";
    for (const auto & rp : snap.requests) {
        const RequestTrace & r = *rp;
        for (size_t i = 0; i < r.tokens.size(); ++i) {
            const TokenSample & t = r.tokens[i];
            const double itl = i ? t.tMs - r.tokens[i - 1].tMs : 0.0;
            out += QByteArray::number(qulonglong(r.id)) + ',' + QByteArray::number(qulonglong(i)) + ',' + num(t.tMs) + ',' + num(itl) +
                   ',' + QByteArray::number(t.id) + ',' + num(t.logprob) + ',' + num(std::exp(double(t.logprob))) + ',' +
                   num(t.entropy) + ',' + tokenOriginName(t.origin) + ',' + csvField(t.text) + '\n';
        }
    }
    return out;
}

QByteArray stepsCsv(const InspectorSnapshot & snap) {
    QByteArray out = "step,t_ms,prefill,decode,running,waiting,pages_used,pages_shared,pages_cached,pages_free,evictions,composition\n";
    if (!snap.kv) return out;
    const auto & steps = snap.kv->steps;
    for (size_t i = 0; i < steps.size(); ++i) {
        const KvStep & s = steps[i];
        std::string comp;  // "id:tokens:p|d;..."
        for (const BatchPart & p : s.parts)
            comp += (comp.empty() ? "" : ";") + std::to_string(p.request) + ':' + std::to_string(p.nTokens) + ':' + (p.prefill ? 'p' : 'd');
        out += QByteArray::number(qlonglong(s.step)) + ',' + num(s.tMs) + ',' + QByteArray::number(s.nPrefill) + ',' +
               QByteArray::number(s.nDecode) + ',' + QByteArray::number(s.nRunning) + ',' + QByteArray::number(s.nWaiting) + ',' +
               QByteArray::number(s.pagesUsed) + ',' + QByteArray::number(s.pagesShared) + ',' + QByteArray::number(s.pagesCached) + ',' +
               QByteArray::number(s.pagesFree) + ',' + QByteArray::number(s.evictions) + ',' + csvField(comp) + '\n';
    }
    return out;
}

QString exportRun(const InspectorSnapshot & snap, const QString & path) {
    auto write = [](const QString & file, const QByteArray & data) -> QString {
        QFile f(file);
        if (!f.open(QIODevice::WriteOnly | QIODevice::Truncate) || f.write(data) != data.size())
            return QStringLiteral("could not write %1: %2").arg(file, f.errorString());
        return QString();
    };
    if (path.endsWith(QLatin1String(".csv"), Qt::CaseInsensitive)) {
        const QString err = write(path, tokensCsv(snap));
        if (!err.isEmpty()) return err;
        const QFileInfo fi(path);
        return write(fi.dir().filePath(fi.completeBaseName() + QStringLiteral(".steps.csv")), stepsCsv(snap));
    }
    return write(path, QJsonDocument(runToJson(snap)).toJson(QJsonDocument::Indented));
}

}  // namespace gb::ui
