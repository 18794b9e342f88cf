// Model file facts for the model library: a GGUF summary (architecture,
// parameters, quantization, context length, size, chat template, license)
// read with gb::gguf::File, and whether a model will fit in memory.
#pragma once

#include <QFuture>
#include <QJsonObject>
#include <QString>
#include <QStringList>

struct GgufSummary {
    QString path;
    bool ok = false;
    QString error;           // why the file could not be read (when !ok)
    QString name;            // general.name
    QString architecture;    // general.architecture
    quint64 parameters = 0;  // sum of tensor elements
    QString quantization;    // from general.file_type, else the dominant tensor type
    qint64 contextLength = 0;
    qint64 fileSize = 0;
    bool hasChatTemplate = false;
    QString license;

    QJsonObject toJson() const;
    static GgufSummary fromJson(const QString &path, const QJsonObject &json);
};

// Blocking (maps and validates the file): call from a worker thread.
GgufSummary readGgufSummary(const QString &path);
QFuture<GgufSummary> readGgufSummaryAsync(const QString &path);

// *.gguf files in folder and its subfolders, sorted.
QStringList findGgufFiles(const QString &folder);

// MemAvailable of a /proc/meminfo text in bytes, or -1.
qint64 parseMemAvailable(const QString &meminfo);
qint64 availableMemoryBytes();  // from /proc/meminfo; -1 if unknown
// Rough memory a model needs to run: its weights plus working buffers.
qint64 estimatedModelMemory(qint64 fileSize);
// A warning when the model will not fit in available (bytes); "" if it fits or available is unknown.
QString memoryWarning(qint64 fileSize, qint64 available);

QString formatBytes(qint64 bytes);
QString formatParameters(quint64 parameters);  // "268M", "7.2B"
QString fileTypeName(int llamaFileType);       // general.file_type -> "Q4_K_M" ("" if unknown)
