// Chat store requests beyond conversations: presets, key/value settings, the
// model library and saved performance runs. Runs on the store thread.
#include "chat_store_worker.h"

#include "chat_store_schema.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QSqlQuery>

namespace {

qint64 nowMs() { return QDateTime::currentMSecsSinceEpoch(); }

QString encodeSetting(const QVariant &value)
{
    return QString::fromUtf8(QJsonDocument(QJsonArray{QJsonValue::fromVariant(value)}).toJson(QJsonDocument::Compact));
}

QVariant decodeSetting(const QString &text)
{
    const QJsonDocument doc = QJsonDocument::fromJson(text.toUtf8());
    if (!doc.isArray() || doc.array().size() != 1)
        return text;
    return doc.array().at(0).toVariant();
}

}  // namespace

// ---- presets, settings, model library, perf runs ---------------------------------

void ChatStoreWorker::savePreset(quint64 req, const PresetRecord &preset)
{
    const QString what = QStringLiteral("save preset \"%1\"").arg(preset.name);
    if (!ensureOpen(req, what))
        return;
    if (preset.name.trimmed().isEmpty()) {
        fail(req, what, Failure{ChatStore::ErrorKind::InvalidArgument, QStringLiteral("a preset needs a name")});
        return;
    }
    PresetRecord saved = preset;
    const bool ok = transact(req, what, [&] {
        QSqlQuery q;
        if (!exec(q,
                  QStringLiteral("INSERT INTO presets (name, system_prompt, settings_json) VALUES (?, ?, ?)"
                                 " ON CONFLICT(name) DO UPDATE SET system_prompt = excluded.system_prompt,"
                                 " settings_json = excluded.settings_json"),
                  {preset.name, preset.systemPrompt, toJsonText(preset.settings)}))
            return false;
        if (!exec(q, QStringLiteral("SELECT id FROM presets WHERE name = ?"), {preset.name}) || !q.next())
            return false;
        saved.id = q.value(0).toLongLong();
        return true;
    });
    if (!ok)
        return;
    ChatStore *store = m_store;
    deliver([store, req, saved] { emit store->presetSaved(req, saved); });
}

void ChatStoreWorker::deletePreset(quint64 req, qint64 presetId)
{
    const QString what = QStringLiteral("delete preset %1").arg(presetId);
    if (!ensureOpen(req, what))
        return;
    const bool ok = transact(req, what, [&] {
        QSqlQuery q;
        return exec(q, QStringLiteral("DELETE FROM presets WHERE id = ?"), {presetId});
    });
    if (!ok)
        return;
    ChatStore *store = m_store;
    deliver([store, req, presetId] { emit store->presetDeleted(req, presetId); });
}

void ChatStoreWorker::listPresets(quint64 req)
{
    const QString what = QStringLiteral("list presets");
    if (!ensureOpen(req, what))
        return;
    QSqlQuery q;
    if (!exec(q, QStringLiteral("SELECT id, name, system_prompt, settings_json FROM presets ORDER BY name")))
        return fail(req, what);
    QList<PresetRecord> list;
    while (q.next())
        list.append(PresetRecord{q.value(0).toLongLong(), q.value(1).toString(), q.value(2).toString(),
                                 fromJsonText(q.value(3).toString())});
    ChatStore *store = m_store;
    deliver([store, req, list] { emit store->presetsListed(req, list); });
}

void ChatStoreWorker::setSettings(quint64 req, const QVariantMap &values)
{
    const QString what = QStringLiteral("save settings");
    if (!ensureOpen(req, what))
        return;
    const bool ok = transact(req, what, [&] {
        QSqlQuery q;
        for (auto it = values.constBegin(); it != values.constEnd(); ++it)
            if (!exec(q, QStringLiteral("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)"),
                      {it.key(), encodeSetting(it.value())}))
                return false;
        return true;
    });
    if (!ok)
        return;
    ChatStore *store = m_store;
    deliver([store, req] { emit store->settingsWritten(req); });
}

void ChatStoreWorker::loadSettings(quint64 req)
{
    const QString what = QStringLiteral("load settings");
    if (!ensureOpen(req, what))
        return;
    QSqlQuery q;
    if (!exec(q, QStringLiteral("SELECT key, value FROM settings")))
        return fail(req, what);
    QVariantMap values;
    while (q.next())
        values.insert(q.value(0).toString(), decodeSetting(q.value(1).toString()));
    ChatStore *store = m_store;
    deliver([store, req, values] { emit store->settingsLoaded(req, values); });
}

void ChatStoreWorker::addModelEntry(quint64 req, const QString &path, const QJsonObject &metadata)
{
    const QString what = QStringLiteral("add %1 to the model library").arg(path);
    if (!ensureOpen(req, what))
        return;
    ModelEntry entry;
    const bool ok = transact(req, what, [&] {
        QSqlQuery q;
        if (!exec(q,
                  QStringLiteral("INSERT INTO model_library (path, metadata_json, added_at) VALUES (?, ?, ?)"
                                 " ON CONFLICT(path) DO UPDATE SET metadata_json = excluded.metadata_json"),
                  {path, toJsonText(metadata), nowMs()}))
            return false;
        if (!exec(q, QStringLiteral("SELECT id, path, metadata_json, added_at FROM model_library WHERE path = ?"),
                  {path}) || !q.next())
            return false;
        entry = ModelEntry{q.value(0).toLongLong(), q.value(1).toString(), fromJsonText(q.value(2).toString()),
                           QDateTime::fromMSecsSinceEpoch(q.value(3).toLongLong())};
        return true;
    });
    if (!ok)
        return;
    ChatStore *store = m_store;
    deliver([store, req, entry] { emit store->modelEntryAdded(req, entry); });
}

void ChatStoreWorker::removeModelEntry(quint64 req, qint64 entryId)
{
    const QString what = QStringLiteral("remove model library entry %1").arg(entryId);
    if (!ensureOpen(req, what))
        return;
    const bool ok = transact(req, what, [&] {
        QSqlQuery q;
        return exec(q, QStringLiteral("DELETE FROM model_library WHERE id = ?"), {entryId});
    });
    if (!ok)
        return;
    ChatStore *store = m_store;
    deliver([store, req, entryId] { emit store->modelEntryRemoved(req, entryId); });
}

void ChatStoreWorker::listModelEntries(quint64 req)
{
    const QString what = QStringLiteral("list the model library");
    if (!ensureOpen(req, what))
        return;
    QSqlQuery q;
    if (!exec(q, QStringLiteral("SELECT id, path, metadata_json, added_at FROM model_library ORDER BY added_at, id")))
        return fail(req, what);
    QList<ModelEntry> list;
    while (q.next())
        list.append(ModelEntry{q.value(0).toLongLong(), q.value(1).toString(), fromJsonText(q.value(2).toString()),
                               QDateTime::fromMSecsSinceEpoch(q.value(3).toLongLong())});
    ChatStore *store = m_store;
    deliver([store, req, list] { emit store->modelEntriesListed(req, list); });
}

void ChatStoreWorker::savePerfRun(quint64 req, const QJsonObject &data)
{
    const QString what = QStringLiteral("save the performance run");
    if (!ensureOpen(req, what))
        return;
    PerfRunRecord run{0, QDateTime::fromMSecsSinceEpoch(nowMs()), data};
    const bool ok = transact(req, what, [&] {
        QSqlQuery q;
        if (!exec(q, QStringLiteral("INSERT INTO perf_runs (created_at, data_json) VALUES (?, ?)"),
                  {run.createdAt.toMSecsSinceEpoch(), toJsonText(data)}))
            return false;
        run.id = q.lastInsertId().toLongLong();
        return true;
    });
    if (!ok)
        return;
    ChatStore *store = m_store;
    deliver([store, req, run] { emit store->perfRunSaved(req, run); });
}

void ChatStoreWorker::listPerfRuns(quint64 req)
{
    const QString what = QStringLiteral("list performance runs");
    if (!ensureOpen(req, what))
        return;
    QSqlQuery q;
    if (!exec(q, QStringLiteral("SELECT id, created_at, data_json FROM perf_runs ORDER BY id")))
        return fail(req, what);
    QList<PerfRunRecord> list;
    while (q.next())
        list.append(PerfRunRecord{q.value(0).toLongLong(), QDateTime::fromMSecsSinceEpoch(q.value(1).toLongLong()),
                                  fromJsonText(q.value(2).toString())});
    ChatStore *store = m_store;
    deliver([store, req, list] { emit store->perfRunsListed(req, list); });
}
