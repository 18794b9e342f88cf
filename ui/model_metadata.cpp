// GGUF summaries and memory checks for the model library.
#include "model_metadata.h"

#include "glassbox/gguf.h"
#include "glassbox/tensor_type.h"

#include <QDirIterator>
#include <QFile>
#include <QFileInfo>
#include <QRegularExpression>
#include <QtConcurrent/QtConcurrentRun>

#include <map>

QJsonObject GgufSummary::toJson() const
{
    QJsonObject o;
    o.insert(QStringLiteral("ok"), ok);
    if (!ok)
        o.insert(QStringLiteral("error"), error);
    o.insert(QStringLiteral("name"), name);
    o.insert(QStringLiteral("architecture"), architecture);
    o.insert(QStringLiteral("parameters"), double(parameters));
    o.insert(QStringLiteral("quantization"), quantization);
    o.insert(QStringLiteral("context_length"), double(contextLength));
    o.insert(QStringLiteral("file_size"), double(fileSize));
    o.insert(QStringLiteral("chat_template"), hasChatTemplate);
    o.insert(QStringLiteral("license"), license);
    return o;
}

GgufSummary GgufSummary::fromJson(const QString &path, const QJsonObject &o)
{
    GgufSummary s;
    s.path = path;
    s.ok = o.value(QStringLiteral("ok")).toBool();
    s.error = o.value(QStringLiteral("error")).toString();
    s.name = o.value(QStringLiteral("name")).toString();
    s.architecture = o.value(QStringLiteral("architecture")).toString();
    s.parameters = quint64(o.value(QStringLiteral("parameters")).toDouble());
    s.quantization = o.value(QStringLiteral("quantization")).toString();
    s.contextLength = qint64(o.value(QStringLiteral("context_length")).toDouble());
    s.fileSize = qint64(o.value(QStringLiteral("file_size")).toDouble());
    s.hasChatTemplate = o.value(QStringLiteral("chat_template")).toBool();
    s.license = o.value(QStringLiteral("license")).toString();
    return s;
}

QString fileTypeName(int t)
{
    // llama.cpp's llama_ftype values (general.file_type).
    static const std::map<int, const char *> names = {
        {0, "F32"},     {1, "F16"},     {2, "Q4_0"},    {3, "Q4_1"},    {7, "Q8_0"},    {8, "Q5_0"},
        {9, "Q5_1"},    {10, "Q2_K"},   {11, "Q3_K_S"}, {12, "Q3_K_M"}, {13, "Q3_K_L"}, {14, "Q4_K_S"},
        {15, "Q4_K_M"}, {16, "Q5_K_S"}, {17, "Q5_K_M"}, {18, "Q6_K"},   {19, "IQ2_XXS"}, {20, "IQ2_XS"},
        {21, "Q2_K_S"}, {22, "IQ3_XS"}, {23, "IQ3_XXS"}, {24, "IQ1_S"}, {25, "IQ4_NL"}, {26, "IQ3_S"},
        {27, "IQ3_M"},  {28, "IQ2_S"},  {29, "IQ2_M"},  {30, "IQ4_XS"}, {31, "IQ1_M"},  {32, "BF16"},
        {36, "TQ1_0"},  {37, "TQ2_0"},
    };
    const auto it = names.find(t);
    return it == names.end() ? QString() : QString::fromLatin1(it->second);
}

GgufSummary readGgufSummary(const QString &path)
{
    GgufSummary s;
    s.path = path;
    const QFileInfo fi(path);
    s.fileSize = fi.size();
    if (!fi.isFile()) {
        s.error = QObject::tr("%1: no such file").arg(path);
        return s;
    }
    auto opened = gb::gguf::File::open(QFile::encodeName(path).toStdString());
    if (!opened) {
        s.error = QString::fromStdString(opened.error().message);
        return s;
    }
    const gb::gguf::File &f = *opened.value();
    s.ok = true;
    auto str = [&](std::string_view key) {
        const auto v = f.get_string(key);
        return v ? QString::fromUtf8(v->data(), qsizetype(v->size())) : QString();
    };
    s.architecture = str("general.architecture");
    s.name = str("general.name");
    s.license = str("general.license");
    if (s.license.isEmpty())
        s.license = str("general.license.name");
    s.hasChatTemplate = f.find("tokenizer.chat_template") != nullptr;
    if (!s.architecture.isEmpty())
        s.contextLength = f.get_int(s.architecture.toStdString() + ".context_length").value_or(0);
    std::map<gb::TensorType, uint64_t> bytesByType;
    for (const gb::gguf::TensorInfo &t : f.tensors()) {
        s.parameters += quint64(t.n_elements());
        bytesByType[t.type] += t.n_bytes;
    }
    if (const auto ft = f.get_int("general.file_type"))
        s.quantization = fileTypeName(int(*ft));
    if (s.quantization.isEmpty() && !bytesByType.empty()) {
        auto best = bytesByType.begin();
        for (auto it = bytesByType.begin(); it != bytesByType.end(); ++it)
            if (it->second > best->second)
                best = it;
        s.quantization = QString::fromLatin1(gb::type_name(best->first));
    }
    return s;
}

QFuture<GgufSummary> readGgufSummaryAsync(const QString &path)
{
    return QtConcurrent::run([path] { return readGgufSummary(path); });
}

QStringList findGgufFiles(const QString &folder)
{
    QStringList files;
    QDirIterator it(folder, {QStringLiteral("*.gguf")}, QDir::Files | QDir::Readable, QDirIterator::Subdirectories);
    while (it.hasNext())
        files.append(it.next());
    files.sort();
    return files;
}

qint64 parseMemAvailable(const QString &meminfo)
{
    static const QRegularExpression re(QStringLiteral("^MemAvailable:\\s+(\\d+)\\s*kB"),
                                       QRegularExpression::MultilineOption);
    const QRegularExpressionMatch m = re.match(meminfo);
    return m.hasMatch() ? m.captured(1).toLongLong() * 1024 : -1;
}

qint64 availableMemoryBytes()
{
    QFile f(QStringLiteral("/proc/meminfo"));
    if (!f.open(QIODevice::ReadOnly))
        return -1;
    return parseMemAvailable(QString::fromLatin1(f.readAll()));
}

qint64 estimatedModelMemory(qint64 fileSize)
{
    // Weights are mapped whole; activations, KV cache and scratch add roughly 10% + 256 MiB.
    return fileSize + fileSize / 10 + (qint64(256) << 20);
}

QString memoryWarning(qint64 fileSize, qint64 available)
{
    if (available < 0 || fileSize <= 0)
        return {};
    const qint64 need = estimatedModelMemory(fileSize);
    if (need <= available)
        return {};
    return QObject::tr("This model needs about %1 of memory but only %2 is available: it may not load, "
                       "or make the computer swap.")
        .arg(formatBytes(need), formatBytes(available));
}

QString formatBytes(qint64 bytes)
{
    if (bytes < 0)
        return QObject::tr("unknown");
    const char *units[] = {"B", "KB", "MB", "GB", "TB"};
    double v = double(bytes);
    int u = 0;
    while (v >= 1000.0 && u < 4) {
        v /= 1000.0;
        ++u;
    }
    return u == 0 ? QStringLiteral("%1 B").arg(bytes) : QStringLiteral("%1 %2").arg(v, 0, 'f', v < 10 ? 2 : 1).arg(QLatin1String(units[u]));
}

QString formatParameters(quint64 n)
{
    if (n == 0)
        return QObject::tr("unknown");
    if (n >= 1000000000ull)
        return QStringLiteral("%1B").arg(double(n) / 1e9, 0, 'f', 1);
    if (n >= 1000000ull)
        return QStringLiteral("%1M").arg(qRound64(double(n) / 1e6));
    if (n >= 1000ull)
        return QStringLiteral("%1K").arg(qRound64(double(n) / 1e3));
    return QString::number(n);
}
