// GGUF reader/writer: round trips, files written by gguf-py (fixtures), one
// corrupted file per validation rule, truncation at every byte, the real model.
#include "glassbox/gguf.h"

#include <QtTest>

#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <limits>
#include <random>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

using namespace gb;
using namespace gb::gguf;

namespace {

QByteArray read_all(const QString & path) {
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly)) return {};
    return f.readAll();
}

bool write_all(const QString & path, const QByteArray & bytes) {
    std::FILE * f = std::fopen(path.toLocal8Bit().constData(), "wb");
    if (!f) return false;
    const bool ok = std::fwrite(bytes.constData(), 1, size_t(bytes.size()), f) == size_t(bytes.size());
    return std::fclose(f) == 0 && ok;
}

void put_u32(QByteArray & b, qint64 at, uint32_t v) { std::memcpy(b.data() + at, &v, 4); }
void put_u64(QByteArray & b, qint64 at, uint64_t v) { std::memcpy(b.data() + at, &v, 8); }

// Position of the bytes of a key or tensor name (the first occurrence).
qint64 find(const QByteArray & b, const char * s) {
    const qint64 i = b.indexOf(QByteArray(s));
    Q_ASSERT(i >= 0);
    return i;
}

// Exact value equality including the on-disk type, recursing into arrays.
bool same_value(const Value & a, const Value & b, QString * why) {
    if (a.type() != b.type()) {
        *why = QString("type %1 vs %2").arg(value_type_name(a.type()), value_type_name(b.type()));
        return false;
    }
    if (const auto * aa = a.as_array()) {
        const auto * bb = b.as_array();
        if (!bb || aa->elem_type != bb->elem_type || aa->items.size() != bb->items.size()) {
            *why = "array element type or length";
            return false;
        }
        for (size_t i = 0; i < aa->items.size(); ++i) {
            if (!same_value(aa->items[i], bb->items[i], why)) {
                *why = QString("[%1] ").arg(i) + *why;
                return false;
            }
        }
        return true;
    }
    if (a.as_string()) {
        if (!b.as_string() || *a.as_string() != *b.as_string()) {
            *why = "string";
            return false;
        }
        return true;
    }
    if (a.type() == ValueType::BOOL) return a.as_bool() == b.as_bool();
    if (a.is_float()) {
        const double x = *a.as_float(), y = *b.as_float();
        if (std::memcmp(&x, &y, sizeof x) != 0) {
            *why = QString("float %1 vs %2").arg(x).arg(y);
            return false;
        }
        return true;
    }
    if (a.as_int() != b.as_int() || a.as_uint() != b.as_uint()) {
        *why = QString("integer %1 vs %2").arg(QString::fromStdString(a.to_display()), QString::fromStdString(b.to_display()));
        return false;
    }
    return true;
}

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint8_t> v(n);
    for (auto & x : v) x = static_cast<uint8_t>(rng());
    return v;
}

std::vector<uint8_t> f32_bytes(const std::vector<float> & f) {
    std::vector<uint8_t> v(f.size() * 4);
    std::memcpy(v.data(), f.data(), v.size());
    return v;
}

Value ints(ValueType t, std::initializer_list<int64_t> xs) {
    std::vector<Value> items;
    for (int64_t x : xs) items.push_back(Value::i64(t, x));
    return Value::array(t, std::move(items));
}

Value strs(std::initializer_list<const char *> xs) {
    std::vector<Value> items;
    for (const char * x : xs) items.push_back(Value::string(x));
    return Value::array(ValueType::STRING, std::move(items));
}

// A GGUF v3 file with one key holding arrays nested `levels` deep (innermost: empty uint8 array).
QByteArray nested_file(int levels) {
    QByteArray b("GGUF");
    auto u32 = [&](uint32_t v) { b.append(reinterpret_cast<const char *>(&v), 4); };
    auto u64 = [&](uint64_t v) { b.append(reinterpret_cast<const char *>(&v), 8); };
    u32(3);
    u64(0);
    u64(1);
    u64(4);
    b.append("deep");
    u32(9);
    for (int i = 1; i < levels; ++i) {
        u32(9);
        u64(1);
    }
    u32(0);
    u64(0);
    return b;
}

}  // namespace

class TstGguf : public QObject {
    Q_OBJECT
  private slots:
    void initTestCase();
    void roundTripValuesAndTensors();
    void alignment();
    void writerRejectsBadInput();
    void writerReportsIoErrors();
    void toDisplay();
    void gguf_pyV3Fixture();
    void handmadeV2Fixture();
    void version2Accepted();
    void nestingLimit();
    void metadataValueCap();
    void corruptFiles_data();
    void corruptFiles();
    void truncatedEverywhere_data();
    void truncatedEverywhere();
    void randomCorruptionNeverCrashes();
    void notAFile();
    void realModel();
    void realModelRewriteIsByteIdentical();

  private:
    QTemporaryDir m_dir;
    QString       m_base_path;  // valid file written by our writer; corrupted copies are made from it
    QByteArray    m_base;

    QString tmp(const QString & name) const { return m_dir.filePath(name); }
};

void TstGguf::initTestCase() {
    QVERIFY(m_dir.isValid());
    Writer w;
    w.set_string("general.architecture", "test");
    w.set_alignment(64);
    w.set_u32("test.key1", 7);
    w.set_u32("test.key2", 8);
    w.set_bool("test.flag", true);
    w.set_array_string("test.tokens", {"a", "bb", "ccc"});
    w.set("test.nested", Value::array(ValueType::ARRAY, {ints(ValueType::INT32, {1, 2}), ints(ValueType::INT32, {3})}));
    w.set_string("test.name", "hello");
    QVERIFY(w.add_tensor("tensor.a", TensorType::F32, {8, 2}, random_bytes(64, 1)).ok());
    QVERIFY(w.add_tensor("tensor.b", TensorType::Q8_0, {32, 2}, random_bytes(68, 2)).ok());
    m_base_path = tmp("base.gguf");
    Status st = w.write(m_base_path.toStdString());
    QVERIFY2(st.ok(), st.ok() ? "" : st.error().to_string().c_str());
    m_base = read_all(m_base_path);
    auto f = File::open(m_base_path.toStdString());
    QVERIFY2(f.ok(), f.ok() ? "" : f.error().to_string().c_str());
    QCOMPARE((*f)->tensors().size(), size_t(2));
}

void TstGguf::roundTripValuesAndTensors() {
    // Every value type, extremes, strings with NUL and UTF-8, empty and nested arrays.
    std::vector<std::pair<std::string, Value>> kv = {
        {"general.architecture", Value::string("roundtrip")},
        {"v.u8", Value::u64(ValueType::UINT8, 255)},
        {"v.i8", Value::i64(ValueType::INT8, -128)},
        {"v.u16", Value::u64(ValueType::UINT16, 65535)},
        {"v.i16", Value::i64(ValueType::INT16, -32768)},
        {"v.u32", Value::u64(ValueType::UINT32, 4294967295u)},
        {"v.i32", Value::i64(ValueType::INT32, std::numeric_limits<int32_t>::min())},
        {"v.u64", Value::u64(ValueType::UINT64, std::numeric_limits<uint64_t>::max())},
        {"v.i64", Value::i64(ValueType::INT64, std::numeric_limits<int64_t>::min())},
        {"v.f32", Value::f64(ValueType::FLOAT32, -0.1f)},
        {"v.f32_inf", Value::f64(ValueType::FLOAT32, -INFINITY)},
        {"v.f64", Value::f64(ValueType::FLOAT64, M_PI)},
        {"v.f64_tiny", Value::f64(ValueType::FLOAT64, 4.9e-324)},
        {"v.true", Value::boolean(true)},
        {"v.false", Value::boolean(false)},
        {"v.str", Value::string(std::string("h\xc3\xa9llo\0wor\nld", 13))},
        {"v.empty_str", Value::string("")},
        {"a.u8", ints(ValueType::UINT8, {0, 1, 255})},
        {"a.i8", ints(ValueType::INT8, {-128, 127})},
        {"a.u16", ints(ValueType::UINT16, {65535})},
        {"a.i16", ints(ValueType::INT16, {-1, 2, -3})},
        {"a.u32", ints(ValueType::UINT32, {0, 4294967295})},
        {"a.i32", ints(ValueType::INT32, {-5, 6})},
        {"a.u64", Value::array(ValueType::UINT64, {Value::u64(ValueType::UINT64, ~0ull), Value::u64(ValueType::UINT64, 3)})},
        {"a.i64", ints(ValueType::INT64, {std::numeric_limits<int64_t>::max(), -7})},
        {"a.f32", Value::array(ValueType::FLOAT32, {Value::f64(ValueType::FLOAT32, 1.25), Value::f64(ValueType::FLOAT32, -3e38f)})},
        {"a.f64", Value::array(ValueType::FLOAT64, {Value::f64(ValueType::FLOAT64, 1e300)})},
        {"a.bool", Value::array(ValueType::BOOL, {Value::boolean(true), Value::boolean(false), Value::boolean(true)})},
        {"a.str", strs({"", "x", "yy z"})},
        {"a.empty", Value::array(ValueType::UINT8, {})},
        {"a.nested", Value::array(ValueType::ARRAY, {ints(ValueType::INT32, {1, 2}), ints(ValueType::INT32, {}),
                                                     ints(ValueType::UINT8, {9})})},
        {"a.nested3", Value::array(ValueType::ARRAY, {Value::array(ValueType::ARRAY, {strs({"deep", "er"})}),
                                                      Value::array(ValueType::STRING, {})})},
    };
    Writer w;
    for (const auto & [k, v] : kv) w.set(k, v);
    w.set_u32("replaced.later", 1);
    w.set_u32("replaced.later", 2);  // replaces in place, keeps position
    kv.emplace_back("replaced.later", Value::u64(ValueType::UINT32, 2));

    struct T {
        std::string          name;
        TensorType           type;
        std::vector<int64_t> ne;
        std::vector<uint8_t> data;
        bool                 streamed;
    };
    std::vector<T> ts = {
        {"f32", TensorType::F32, {3, 2}, f32_bytes({1, 2, 3, -4, 5.5f, 1e-30f}), false},
        {"f16", TensorType::F16, {16}, random_bytes(32, 3), false},
        {"i8.odd", TensorType::I8, {5}, random_bytes(5, 4), false},
        {"q8_0", TensorType::Q8_0, {64, 3}, random_bytes(2 * 34 * 3, 5), false},
        {"q4_k", TensorType::Q4_K, {256, 2}, random_bytes(144 * 2, 6), false},
        {"bf16.4d", TensorType::BF16, {2, 3, 2, 2}, random_bytes(48, 7), false},
        {"q6_k.streamed", TensorType::Q6_K, {512, 3}, random_bytes(210 * 2 * 3, 8), true},
        {"q5_0.streamed", TensorType::Q5_0, {32}, random_bytes(22, 9), true},
    };
    for (const T & t : ts) {
        Status st = t.streamed ? w.add_tensor(t.name, t.type, t.ne,
                                              [&t](uint8_t * dst, size_t n) {
                                                  QCOMPARE(n, t.data.size());
                                                  std::memcpy(dst, t.data.data(), n);
                                              })
                               : w.add_tensor(t.name, t.type, t.ne, t.data);
        QVERIFY2(st.ok(), st.ok() ? "" : st.error().to_string().c_str());
    }
    const QString path = tmp("roundtrip.gguf");
    Status st = w.write(path.toStdString());
    QVERIFY2(st.ok(), st.ok() ? "" : st.error().to_string().c_str());
    QVERIFY(!QFile::exists(path + ".tmp"));

    auto r = File::open(path.toStdString());
    QVERIFY2(r.ok(), r.ok() ? "" : r.error().to_string().c_str());
    const File & f = **r;
    QCOMPARE(f.version(), 3u);
    QCOMPARE(f.alignment(), uint64_t(32));
    QVERIFY(!f.find("general.alignment"));
    QCOMPARE(f.metadata().size(), kv.size());
    for (size_t i = 0; i < kv.size(); ++i) {
        QCOMPARE(f.metadata()[i].first, kv[i].first);
        QString why;
        QVERIFY2(same_value(f.metadata()[i].second, kv[i].second, &why),
                 qPrintable(QString::fromStdString(kv[i].first) + ": " + why));
        QVERIFY(f.find(kv[i].first) == &f.metadata()[i].second);
    }
    QCOMPARE(f.get_string("general.architecture").value_or(""), std::string_view("roundtrip"));
    QCOMPARE(f.get_int("v.i32").value_or(0), int64_t(std::numeric_limits<int32_t>::min()));
    QVERIFY(!f.get_int("v.u64").has_value());  // does not fit int64
    QCOMPARE(f.get_float("v.f64").value_or(0), M_PI);
    QCOMPARE(f.get_bool("v.true"), std::optional<bool>(true));
    QVERIFY(f.get_array("a.str") && f.get_array("a.str")->items.size() == 3);
    QVERIFY(!f.get_array("v.str"));
    QVERIFY(!f.find("missing"));

    QCOMPARE(f.tensors().size(), ts.size());
    QCOMPARE(f.data_offset() % 32, uint64_t(0));
    uint64_t expect_offset = 0;
    for (size_t i = 0; i < ts.size(); ++i) {
        const TensorInfo & ti = f.tensors()[i];
        QCOMPARE(ti.name, ts[i].name);
        QCOMPARE(ti.type, ts[i].type);
        QCOMPARE(ti.n_dims, int(ts[i].ne.size()));
        for (int d = 0; d < 4; ++d) QCOMPARE(ti.ne[d], d < ti.n_dims ? ts[i].ne[d] : int64_t(1));
        QCOMPARE(ti.n_bytes, ts[i].data.size());
        QCOMPARE(ti.offset, expect_offset);  // packed, each padded to 32
        QVERIFY(std::memcmp(ti.data, ts[i].data.data(), ti.n_bytes) == 0);
        QVERIFY(f.find_tensor(ti.name) == &ti);
        expect_offset += (ti.n_bytes + 31) / 32 * 32;
    }
    QCOMPARE(f.file_size(), f.data_offset() + expect_offset);  // last tensor padded too
    QVERIFY(!f.find_tensor("nope"));
}

void TstGguf::alignment() {
    // Custom alignment: written as general.alignment (u32), honoured for every tensor.
    for (uint32_t a : {1u, 8u, 64u, 4096u}) {
        Writer w;
        w.set_string("general.architecture", "x");
        w.set_alignment(a);
        QVERIFY(w.add_tensor("a", TensorType::I8, {3}, {1, 2, 3}).ok());
        QVERIFY(w.add_tensor("b", TensorType::F32, {1}, f32_bytes({2.5f})).ok());
        const QString path = tmp(QString("align%1.gguf").arg(a));
        QVERIFY(w.write(path.toStdString()).ok());
        auto r = File::open(path.toStdString());
        QVERIFY2(r.ok(), r.ok() ? "" : r.error().to_string().c_str());
        QCOMPARE((*r)->alignment(), uint64_t(a));
        const Value * v = (*r)->find("general.alignment");
        QVERIFY(v);
        QCOMPARE(v->type(), ValueType::UINT32);
        QCOMPARE(v->as_uint().value_or(0), uint64_t(a));
        QCOMPARE((*r)->data_offset() % a, uint64_t(0));
        QCOMPARE((*r)->tensors()[1].offset, uint64_t((3 + a - 1) / a * a));
        QCOMPARE((*r)->file_size() % a, uint64_t(0));
        float x = 0;
        std::memcpy(&x, (*r)->tensors()[1].data, 4);
        QCOMPARE(x, 2.5f);
    }
    // Back to the default removes the key.
    Writer w;
    w.set_alignment(64);
    w.set_alignment(32);
    QVERIFY(w.write(tmp("align_default.gguf").toStdString()).ok());
    auto r = File::open(tmp("align_default.gguf").toStdString());
    QVERIFY(r.ok());
    QVERIFY(!(*r)->find("general.alignment"));
    QCOMPARE((*r)->metadata().size(), size_t(0));
}

void TstGguf::writerRejectsBadInput() {
    Writer w;
    auto code = [](const Status & s) { return s.ok() ? -1 : int(s.error().code); };
    const int bad = int(ErrorCode::InvalidArgument);
    QCOMPARE(code(w.add_tensor("t", TensorType::F32, {4}, std::vector<uint8_t>(15))), bad);     // wrong size
    QCOMPARE(code(w.add_tensor("t", TensorType::Q8_0, {33}, std::vector<uint8_t>(34))), bad);   // not a block multiple
    QCOMPARE(code(w.add_tensor("t", TensorType::F32, {}, std::vector<uint8_t>())), bad);        // no dims
    QCOMPARE(code(w.add_tensor("t", TensorType::F32, {1, 1, 1, 1, 1}, std::vector<uint8_t>(4))), bad);
    QCOMPARE(code(w.add_tensor("t", TensorType::F32, {0}, std::vector<uint8_t>())), bad);
    QCOMPARE(code(w.add_tensor("t", static_cast<TensorType>(99), {1}, std::vector<uint8_t>(1))), bad);
    QCOMPARE(code(w.add_tensor("", TensorType::F32, {1}, std::vector<uint8_t>(4))), bad);
    QCOMPARE(code(w.add_tensor(std::string(64, 'n'), TensorType::F32, {1}, std::vector<uint8_t>(4))), bad);
    QCOMPARE(code(w.add_tensor("t", TensorType::F32, {1}, std::vector<uint8_t>(4))), -1);
    QCOMPARE(code(w.add_tensor("t", TensorType::F32, {1}, std::vector<uint8_t>(4))), bad);  // duplicate

    const std::string path = tmp("never.gguf").toStdString();
    Writer w1;
    w1.set("k", Value::u64(ValueType::UINT8, 300));  // out of range for its type
    QCOMPARE(code(w1.write(path)), bad);
    Writer w2;
    w2.set("k", Value::array(ValueType::INT32, {Value::string("no")}));  // item type mismatch
    QCOMPARE(code(w2.write(path)), bad);
    Writer w3;
    w3.set_alignment(48);
    QCOMPARE(code(w3.write(path)), bad);
    Writer w4;
    Value v = ints(ValueType::UINT8, {});
    for (int i = 0; i < 8; ++i) v = Value::array(ValueType::ARRAY, {v});  // 9 levels
    w4.set("deep", v);
    QCOMPARE(code(w4.write(path)), bad);
    QVERIFY(!QFile::exists(QString::fromStdString(path)));
    QVERIFY(!QFile::exists(QString::fromStdString(path + ".tmp")));
}

void TstGguf::writerReportsIoErrors() {
    Writer w;
    w.set_string("general.architecture", "x");
    QVERIFY(w.add_tensor("big", TensorType::I8, {1 << 16}, [](uint8_t * dst, size_t n) { std::memset(dst, 7, n); }).ok());

    Status st = w.write(tmp("no/such/dir/x.gguf").toStdString());
    QVERIFY(!st.ok());
    QCOMPARE(st.error().code, ErrorCode::Io);
    QVERIFY(st.error().message.find("no/such/dir/x.gguf.tmp") != std::string::npos);

    // "Disk full": a file size limit makes write() fail with EFBIG part way.
    // The previous good file must survive and no .tmp may be left behind.
    const QString path = tmp("full.gguf");
    Writer small;
    small.set_string("general.architecture", "previous");
    QVERIFY(small.write(path.toStdString()).ok());
    struct rlimit old {};
    QVERIFY(getrlimit(RLIMIT_FSIZE, &old) == 0);
    auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = old;
    lim.rlim_cur = 4096;
    QVERIFY(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    st = w.write(path.toStdString());
    setrlimit(RLIMIT_FSIZE, &old);
    std::signal(SIGXFSZ, old_handler);
    QVERIFY(!st.ok());
    QCOMPARE(st.error().code, ErrorCode::Io);
    QVERIFY2(st.error().message.find("write failed") != std::string::npos, st.error().message.c_str());
    QVERIFY(!QFile::exists(path + ".tmp"));
    auto r = File::open(path.toStdString());
    QVERIFY(r.ok());
    QCOMPARE((*r)->get_string("general.architecture").value_or(""), std::string_view("previous"));

    // Unreadable paths are Io errors on the reader side too.
    auto missing = File::open(tmp("missing.gguf").toStdString());
    QVERIFY(!missing.ok());
    QCOMPARE(missing.error().code, ErrorCode::Io);
}

void TstGguf::toDisplay() {
    QCOMPARE(Value::u64(ValueType::UINT32, 42).to_display(), std::string("42"));
    QCOMPARE(Value::i64(ValueType::INT8, -3).to_display(), std::string("-3"));
    QCOMPARE(Value::f64(ValueType::FLOAT32, 1.5).to_display(), std::string("1.5"));
    QCOMPARE(Value::boolean(false).to_display(), std::string("false"));
    QCOMPARE(Value::string("a\"b\n").to_display(), std::string("\"a\\\"b\\n\""));
    QCOMPARE(strs({"a", "bb", "ccc"}).to_display(2), std::string("string[3] [\"a\", \"bb\", ...]"));
    QCOMPARE(strs({"a"}).to_display(), std::string("string[1] [\"a\"]"));
    QCOMPARE(ints(ValueType::INT32, {}).to_display(), std::string("int32[0] []"));
    QCOMPARE(Value::array(ValueType::ARRAY, {ints(ValueType::UINT8, {1, 2, 3})}).to_display(2),
             std::string("array[1] [uint8[3] [1, ...]]"));
    const std::string long_str = Value::string(std::string(500, 'x')).to_display();
    QVERIFY(long_str.size() < 100);
    QVERIFY(long_str.find("...") != std::string::npos);
}

void TstGguf::gguf_pyV3Fixture() {
    // Written by gguf-py (scripts/make_gguf_fixtures.py); offsets as gguf-py's reader reports them.
    const std::string path = GLASSBOX_FIXTURE_DIR "/gguf/v3_gguf_py.gguf";
    auto r = File::open(path);
    QVERIFY2(r.ok(), r.ok() ? "" : r.error().to_string().c_str());
    const File & f = **r;
    QCOMPARE(f.version(), 3u);
    QCOMPARE(f.alignment(), uint64_t(64));
    QCOMPARE(f.metadata().size(), size_t(23));
    QCOMPARE(f.metadata()[0].first, std::string("general.architecture"));
    QCOMPARE(f.metadata()[1].first, std::string("general.alignment"));
    QCOMPARE(f.metadata().back().first, std::string("fx.nested_str"));
    QCOMPARE(f.get_string("general.architecture").value_or(""), std::string_view("fixture"));
    QCOMPARE(f.get_string("general.name").value_or(""), std::string_view("gguf-py fixture"));
    QCOMPARE(f.find("fx.u8")->type(), ValueType::UINT8);
    QCOMPARE(f.get_int("fx.u8").value_or(0), int64_t(200));
    QCOMPARE(f.find("fx.i8")->type(), ValueType::INT8);
    QCOMPARE(f.get_int("fx.i8").value_or(0), int64_t(-100));
    QCOMPARE(f.find("fx.u16")->type(), ValueType::UINT16);
    QCOMPARE(f.get_int("fx.u16").value_or(0), int64_t(60000));
    QCOMPARE(f.find("fx.i16")->type(), ValueType::INT16);
    QCOMPARE(f.get_int("fx.i16").value_or(0), int64_t(-30000));
    QCOMPARE(f.find("fx.u32")->type(), ValueType::UINT32);
    QCOMPARE(f.get_int("fx.u32").value_or(0), int64_t(4000000000));
    QCOMPARE(f.find("fx.i32")->type(), ValueType::INT32);
    QCOMPARE(f.get_int("fx.i32").value_or(0), int64_t(-2000000000));
    QCOMPARE(f.find("fx.u64")->type(), ValueType::UINT64);
    QCOMPARE(f.find("fx.u64")->as_uint().value_or(0), (uint64_t(1) << 63) + 5);
    QCOMPARE(f.find("fx.i64")->type(), ValueType::INT64);
    QCOMPARE(f.get_int("fx.i64").value_or(0), -(int64_t(1) << 62) - 7);
    QCOMPARE(f.find("fx.f32")->type(), ValueType::FLOAT32);
    QCOMPARE(f.get_float("fx.f32").value_or(0), 1.5);
    QCOMPARE(f.find("fx.f64")->type(), ValueType::FLOAT64);
    QCOMPARE(f.get_float("fx.f64").value_or(0), -2.25e100);
    QCOMPARE(f.get_bool("fx.true"), std::optional<bool>(true));
    QCOMPARE(f.get_bool("fx.false"), std::optional<bool>(false));
    QCOMPARE(f.get_string("fx.str").value_or(""), std::string_view("h\xc3\xa9llo\nworld"));

    QString why;
    QVERIFY2(same_value(*f.find("fx.arr_str"), strs({"a", "", "ccc"}), &why), qPrintable(why));
    QVERIFY2(same_value(*f.find("fx.arr_i32"), ints(ValueType::INT32, {1, -2, 3}), &why), qPrintable(why));
    QVERIFY2(same_value(*f.find("fx.arr_f32"),
                        Value::array(ValueType::FLOAT32, {Value::f64(ValueType::FLOAT32, 0.5), Value::f64(ValueType::FLOAT32, -1.0)}),
                        &why),
             qPrintable(why));
    QVERIFY2(same_value(*f.find("fx.arr_u8"), ints(ValueType::UINT8, {1, 2, 255}), &why), qPrintable(why));
    QVERIFY2(same_value(*f.find("fx.arr_u64"),
                        Value::array(ValueType::UINT64, {Value::u64(ValueType::UINT64, ~0ull), Value::u64(ValueType::UINT64, 0)}),
                        &why),
             qPrintable(why));
    QVERIFY2(same_value(*f.find("fx.nested"),
                        Value::array(ValueType::ARRAY, {ints(ValueType::INT32, {1, 2}), ints(ValueType::INT32, {3}),
                                                        ints(ValueType::INT32, {4, 5, 6})}),
                        &why),
             qPrintable(why));
    QVERIFY2(same_value(*f.find("fx.nested_str"), Value::array(ValueType::ARRAY, {strs({"x", "yy"}), strs({"zzz"})}), &why),
             qPrintable(why));

    QCOMPARE(f.data_offset(), uint64_t(1088));
    QCOMPARE(f.tensors().size(), size_t(4));
    const TensorInfo * t = f.find_tensor("t.f32");
    QVERIFY(t);
    QCOMPARE(t->type, TensorType::F32);
    QCOMPARE(t->n_dims, 2);
    QCOMPARE(t->ne[0], int64_t(4));
    QCOMPARE(t->ne[1], int64_t(3));
    QCOMPARE(t->offset, uint64_t(0));
    for (int i = 0; i < 12; ++i) {
        float x;
        std::memcpy(&x, t->data + 4 * i, 4);
        QCOMPARE(x, float(i));
    }
    t = f.find_tensor("t.f16");
    QVERIFY(t);
    QCOMPARE(t->type, TensorType::F16);
    QCOMPARE(t->ne[0], int64_t(8));
    QCOMPARE(t->offset, uint64_t(64));
    for (int i = 0; i < 8; ++i) {
        uint16_t h;
        std::memcpy(&h, t->data + 2 * i, 2);
        QCOMPARE(fp16_to_fp32(h), (i - 4) / 2.0f);
    }
    t = f.find_tensor("t.q8_0");
    QVERIFY(t);
    QCOMPARE(t->type, TensorType::Q8_0);
    QCOMPARE(t->ne[0], int64_t(32));
    QCOMPARE(t->ne[1], int64_t(2));
    QCOMPARE(t->n_bytes, size_t(68));
    QCOMPARE(t->offset, uint64_t(128));
    for (int i = 0; i < 68; ++i) QCOMPARE(int(t->data[i]), (7 * i + 3) % 256);
    t = f.find_tensor("t.i32");
    QVERIFY(t);
    QCOMPARE(t->type, TensorType::I32);
    QCOMPARE(t->offset, uint64_t(256));
    int32_t iv[3];
    std::memcpy(iv, t->data, 12);
    QCOMPARE(iv[0], 5);
    QCOMPARE(iv[1], -6);
    QCOMPARE(iv[2], 7);
}

void TstGguf::handmadeV2Fixture() {
    const std::string path = GLASSBOX_FIXTURE_DIR "/gguf/v2_handmade.gguf";
    auto r = File::open(path);
    QVERIFY2(r.ok(), r.ok() ? "" : r.error().to_string().c_str());
    const File & f = **r;
    QCOMPARE(f.version(), 2u);
    QCOMPARE(f.alignment(), uint64_t(32));
    QCOMPARE(f.metadata().size(), size_t(4));
    QCOMPARE(f.get_string("general.architecture").value_or(""), std::string_view("handmade"));
    QCOMPARE(f.get_int("hm.count").value_or(0), int64_t(42));
    QCOMPARE(f.get_float("hm.ratio").value_or(0), 0.25);
    QString why;
    QVERIFY2(same_value(*f.find("hm.words"), strs({"one", "two"}), &why), qPrintable(why));
    QCOMPARE(f.tensors().size(), size_t(2));
    const TensorInfo & a = f.tensors()[0];
    QCOMPARE(a.name, std::string("hm.a"));
    QCOMPARE(a.ne[0], int64_t(2));
    QCOMPARE(a.ne[1], int64_t(2));
    float x[4];
    std::memcpy(x, a.data, 16);
    QCOMPARE(x[2], 3.5f);
    const TensorInfo & b = f.tensors()[1];
    QCOMPARE(b.type, TensorType::Q8_0);
    QCOMPARE(b.offset, uint64_t(32));
    QCOMPARE(b.data, a.data + 32);
    QCOMPARE(int(b.data[33]), (7 * 33 + 3) % 256);
}

void TstGguf::version2Accepted() {
    QByteArray b = m_base;
    put_u32(b, 4, 2);
    QVERIFY(write_all(tmp("v2.gguf"), b));
    auto r = File::open(tmp("v2.gguf").toStdString());
    QVERIFY(r.ok());
    QCOMPARE((*r)->version(), 2u);
}

void TstGguf::nestingLimit() {
    QVERIFY(write_all(tmp("nest8.gguf"), nested_file(8)));
    auto ok = File::open(tmp("nest8.gguf").toStdString());
    QVERIFY2(ok.ok(), ok.ok() ? "" : ok.error().to_string().c_str());
    const Value * v = (*ok)->find("deep");
    for (int i = 0; i < 7; ++i) v = &v->as_array()->items.at(0);
    QCOMPARE(v->as_array()->elem_type, ValueType::UINT8);

    QVERIFY(write_all(tmp("nest9.gguf"), nested_file(9)));
    auto bad = File::open(tmp("nest9.gguf").toStdString());
    QVERIFY(!bad.ok());
    QCOMPARE(bad.error().code, ErrorCode::InvalidFile);
    // Value starts at 24 + 12 ("deep") + 4 (type) = 40; the 8th level's element type is at 40 + 7 * 12.
    QVERIFY2(bad.error().message.find("offset 124:") != std::string::npos, bad.error().message.c_str());
    QVERIFY2(bad.error().message.find("'deep'[0][0][0][0][0][0][0]") != std::string::npos, bad.error().message.c_str());
}

void TstGguf::metadataValueCap() {
    // One uint8 array of 2^23 + 1 items: fits in the file, but exceeds the cap on values.
    const uint64_t n = (uint64_t(1) << 23) + 1;
    QByteArray b = nested_file(1);  // key "deep": array of uint8, count at 44
    put_u64(b, 44, n);
    b.append(QByteArray(qsizetype(n), '\0'));
    QVERIFY(write_all(tmp("many.gguf"), b));
    auto r = File::open(tmp("many.gguf").toStdString());
    QVERIFY(!r.ok());
    QCOMPARE(r.error().code, ErrorCode::InvalidFile);
    QVERIFY2(r.error().message.find("offset 44: metadata key 'deep': more than 8388608 metadata values") != std::string::npos,
             r.error().message.c_str());
    QFile::remove(tmp("many.gguf"));
}

void TstGguf::corruptFiles_data() {
    QTest::addColumn<QByteArray>("bytes");
    QTest::addColumn<qint64>("offset");
    QTest::addColumn<QStringList>("needles");

    const QByteArray & base = m_base;
    const qint64 arch = find(base, "general.architecture");
    const qint64 align = find(base, "general.alignment");
    const qint64 key1 = find(base, "test.key1");
    const qint64 key2 = find(base, "test.key2");
    const qint64 flag = find(base, "test.flag");
    const qint64 tokens = find(base, "test.tokens");
    const qint64 nested = find(base, "test.nested");
    const qint64 ta = find(base, "tensor.a");
    const qint64 tb = find(base, "tensor.b");
    // Tensor info after its name: n_dims +8, ne[0] +12, ne[1] +20, type +28, offset +32.
    uint64_t tb_offset = 0;
    std::memcpy(&tb_offset, base.data() + tb + 32, 8);
    QCOMPARE(tb_offset, uint64_t(64));

    auto row = [&](const char * name, QByteArray b, qint64 at, QStringList needles) {
        QTest::newRow(name) << b << at << needles;
    };
    auto u32_at = [&](qint64 at, uint32_t v) { QByteArray b = base; put_u32(b, at, v); return b; };
    auto u64_at = [&](qint64 at, uint64_t v) { QByteArray b = base; put_u64(b, at, v); return b; };
    auto bytes_at = [&](qint64 at, const char * s) {
        QByteArray b = base;
        b.replace(at, qint64(std::strlen(s)), s);
        return b;
    };

    row("empty file", QByteArray(), 0, {"empty"});
    row("shorter than the header", base.left(13), 8, {"tensor count", "truncated"});
    row("bad magic", bytes_at(0, "GGUX"), 0, {"magic"});
    row("version 1", u32_at(4, 1), 4, {"version 1 is not supported"});
    row("version 99", u32_at(4, 99), 4, {"version 99"});
    row("big-endian", u32_at(4, 0x03000000), 4, {"big-endian"});
    row("huge tensor count", u64_at(8, uint64_t(1) << 60), 8, {"tensor count 1152921504606846976"});
    row("huge kv count", u64_at(16, ~uint64_t(0)), 16, {"key-value count"});
    row("huge key length", u64_at(24, uint64_t(1) << 62), 24, {"metadata entry #0 key", "string length"});
    row("huge string length", u64_at(arch + 24, ~uint64_t(0) - 3), arch + 24,
        {"'general.architecture'", "string length 18446744073709551612"});
    row("huge array count", u64_at(tokens + 19, uint64_t(1) << 61), tokens + 19, {"'test.tokens'", "array length"});
    row("huge string in array", u64_at(tokens + 27 + 9, 1000000), tokens + 36, {"'test.tokens'[1]", "string length 1000000"});
    row("huge nested array count", u64_at(nested + 31, 1u << 30), nested + 31, {"'test.nested'[0]", "array length"});
    row("unknown value type", u32_at(key1 + 9, 13), key1 + 9, {"'test.key1'", "unknown value type 13"});
    row("unknown array element type", u32_at(tokens + 15, 77), tokens + 15, {"'test.tokens'", "element type 77"});
    QByteArray bad_bool = base;
    bad_bool[flag + 13] = 2;
    row("bool not 0 or 1", bad_bool, flag + 13, {"'test.flag'", "bool value 2"});
    row("duplicate key", bytes_at(key2, "test.key1"), key2 - 8, {"'test.key1'", "duplicate key"});
    row("alignment 48", u32_at(align + 21, 48), align + 21, {"general.alignment", "power of two"});
    row("alignment 0", u32_at(align + 21, 0), align + 21, {"general.alignment", "power of two"});
    row("alignment as int32", u32_at(align + 17, 5), align + 17, {"general.alignment", "must be uint32"});
    row("unknown tensor type", u32_at(tb + 28, 99), tb + 28, {"'tensor.b'", "unknown tensor type id 99"});
    row("n_dims 0", u32_at(ta + 8, 0), ta + 8, {"'tensor.a'", "n_dims 0"});
    row("n_dims 5", u32_at(ta + 8, 5), ta + 8, {"'tensor.a'", "n_dims 5"});
    row("zero dimension", u64_at(ta + 20, 0), ta + 20, {"'tensor.a' ne[1]", "not positive"});
    row("negative dimension", u64_at(ta + 20, ~uint64_t(0)), ta + 20, {"'tensor.a' ne[1]", "-1"});
    row("element count overflow", u64_at(ta + 20, uint64_t(1) << 62), ta + 20, {"'tensor.a' ne[1]", "overflow"});
    row("data larger than file", u64_at(ta + 20, uint64_t(1) << 40), ta + 28, {"'tensor.a'", "larger than the file"});
    row("ne0 not a block multiple", u64_at(tb + 12, 33), tb + 12, {"'tensor.b' ne[0]", "block size 32"});
    row("offset outside file", u64_at(tb + 32, uint64_t(1) << 40), tb + 32, {"'tensor.b' offset", "outside the file"});
    row("offset wraps around", u64_at(tb + 32, ~uint64_t(63)), tb + 32, {"'tensor.b' offset", "outside the file"});
    row("data ends past the file", u64_at(tb + 32, base.size() - 64), tb + 32, {"'tensor.b'", "outside the file"});
    row("misaligned offset (by 32)", u64_at(tb + 32, 96), tb + 32, {"'tensor.b'", "alignment 64"});
    row("misaligned offset (by 1)", u64_at(tb + 32, 65), tb + 32, {"'tensor.b'", "alignment 64"});
    row("duplicate tensor name", bytes_at(tb, "tensor.a"), tb - 8, {"'tensor.a'", "duplicate tensor name"});
}

void TstGguf::corruptFiles() {
    QFETCH(QByteArray, bytes);
    QFETCH(qint64, offset);
    QFETCH(QStringList, needles);
    const QString path = tmp("corrupt.gguf");
    QVERIFY(write_all(path, bytes));
    auto r = File::open(path.toStdString());
    QVERIFY2(!r.ok(), "a corrupt file opened");
    QCOMPARE(r.error().code, ErrorCode::InvalidFile);
    const QString msg = QString::fromStdString(r.error().message);
    QVERIFY2(msg.startsWith(path + ": "), qPrintable(msg));
    QVERIFY2(msg.contains(QString("at byte offset %1: ").arg(offset)), qPrintable(msg));
    for (const QString & n : needles) QVERIFY2(msg.contains(n), qPrintable(msg + "  (missing: " + n + ")"));
}

void TstGguf::truncatedEverywhere_data() {
    QTest::addColumn<QString>("source");
    QTest::newRow("ours") << m_base_path;
    QTest::newRow("gguf-py") << QString(GLASSBOX_FIXTURE_DIR "/gguf/v3_gguf_py.gguf");
    QTest::newRow("handmade v2") << QString(GLASSBOX_FIXTURE_DIR "/gguf/v2_handmade.gguf");
}

void TstGguf::truncatedEverywhere() {
    // Every prefix that cuts into the header or any tensor's data must fail
    // cleanly; prefixes that only drop the final padding are still valid.
    QFETCH(QString, source);
    auto full = File::open(source.toStdString());
    QVERIFY(full.ok());
    uint64_t data_end = 0;
    for (const TensorInfo & t : (*full)->tensors()) {
        data_end = std::max<uint64_t>(data_end, (*full)->data_offset() + t.offset + t.n_bytes);
    }
    const QByteArray bytes = read_all(source);
    QCOMPARE(uint64_t(bytes.size()), (*full)->file_size());
    const QString path = tmp("truncated.gguf");
    QVERIFY(write_all(path, bytes));
    for (qint64 n = bytes.size() - 1; n >= 0; --n) {
        QVERIFY(::truncate(path.toLocal8Bit().constData(), n) == 0);
        auto r = File::open(path.toStdString());
        if (uint64_t(n) < data_end) {
            QVERIFY2(!r.ok(), qPrintable(QString("prefix of %1 bytes opened").arg(n)));
            QCOMPARE(r.error().code, ErrorCode::InvalidFile);
            QVERIFY(r.error().message.rfind(path.toStdString() + ": at byte offset ", 0) == 0);
        } else {
            QVERIFY2(r.ok(), qPrintable(QString("prefix of %1 bytes: ").arg(n) +
                                        QString::fromStdString(r.ok() ? "" : r.error().message)));
        }
    }
}

void TstGguf::randomCorruptionNeverCrashes() {
    // Random byte edits in the header/metadata/tensor-info region: open()
    // either succeeds or reports InvalidFile; under ASan this also checks bounds.
    std::mt19937 rng(1234);
    const QString path = tmp("fuzz.gguf");
    const qint64 header_end = find(m_base, "tensor.b") + 40;
    // One descriptor rewritten in place: recreating 1500 files is slow on some disks.
    const int fd = ::open(path.toLocal8Bit().constData(), O_RDWR | O_CREAT | O_TRUNC, 0644);
    QVERIFY(fd >= 0);
    int failures = 0;
    for (int iter = 0; iter < 1500; ++iter) {
        QByteArray b = m_base;
        const int n_edits = 1 + int(rng() % 4);
        for (int e = 0; e < n_edits; ++e) {
            const qint64 at = qint64(rng() % uint32_t(header_end));
            const uint32_t kind = rng() % 3;
            if (kind == 0) b[at] = char(rng());
            else if (kind == 1) b[at] = char(0xff);
            else b[at] = char(b[at] ^ (1 << (rng() % 8)));
        }
        if (rng() % 4 == 0) b.truncate(qint64(rng() % uint32_t(b.size())));
        QVERIFY(::pwrite(fd, b.constData(), size_t(b.size()), 0) == b.size());
        QVERIFY(::ftruncate(fd, b.size()) == 0);
        auto r = File::open(path.toStdString());
        if (!r.ok()) {
            ++failures;
            QCOMPARE(r.error().code, ErrorCode::InvalidFile);
        }
    }
    ::close(fd);
    QVERIFY(failures > 100);
}

void TstGguf::notAFile() {
    auto r = File::open(m_dir.path().toStdString());
    QVERIFY(!r.ok());
    QCOMPARE(r.error().code, ErrorCode::Io);
}

void TstGguf::realModel() {
    const QString path = QString(GLASSBOX_MODEL_DIR) + "/gemma-3-270m-q4_k_m.gguf";
    if (!QFile::exists(path)) QSKIP("model file not present");
    auto r = File::open(path.toStdString());
    QVERIFY2(r.ok(), r.ok() ? "" : r.error().to_string().c_str());
    const File & f = **r;
    QCOMPARE(f.version(), 3u);
    QCOMPARE(f.get_string("general.architecture").value_or(""), std::string_view("gemma3"));
    QCOMPARE(f.get_int("gemma3.embedding_length").value_or(0), int64_t(640));
    QCOMPARE(f.get_int("gemma3.block_count").value_or(0), int64_t(18));
    QCOMPARE(f.tensors().size(), size_t(236));
    const TensorInfo * emb = f.find_tensor("token_embd.weight");
    QVERIFY(emb);
    QCOMPARE(emb->type, TensorType::Q8_0);
    QCOMPARE(emb->n_dims, 2);
    QCOMPARE(emb->ne[0], int64_t(640));
    QCOMPARE(emb->ne[1], int64_t(262144));
    QCOMPARE(emb->n_bytes, size_t(640 / 32 * 34) * 262144);
    const Value::Array * tokens = f.get_array("tokenizer.ggml.tokens");
    QVERIFY(tokens);
    QCOMPARE(tokens->elem_type, ValueType::STRING);
    QCOMPARE(tokens->items.size(), size_t(262144));
    QVERIFY(!f.find("tokenizer.chat_template"));
    for (const TensorInfo & t : f.tensors()) {
        QVERIFY(t.data != nullptr);
        QVERIFY(f.data_offset() + t.offset + t.n_bytes <= f.file_size());
    }
}

void TstGguf::realModelRewriteIsByteIdentical() {
    // The model was written by llama.cpp's tools: reading it and writing it back
    // (metadata in order, tensors streamed through FillFn) must reproduce it byte for byte.
    const QString path = QString(GLASSBOX_MODEL_DIR) + "/gemma-3-270m-q4_k_m.gguf";
    if (!QFile::exists(path)) QSKIP("model file not present");
    auto r = File::open(path.toStdString());
    QVERIFY(r.ok());
    const File & f = **r;
    Writer w;
    for (const auto & [k, v] : f.metadata()) w.set(k, v);
    for (const TensorInfo & t : f.tensors()) {
        const uint8_t * src = t.data;
        Status st = w.add_tensor(t.name, t.type, std::vector<int64_t>(t.ne, t.ne + t.n_dims),
                                 [src](uint8_t * dst, size_t n) { std::memcpy(dst, src, n); });
        QVERIFY2(st.ok(), st.ok() ? "" : st.error().to_string().c_str());
    }
    const QString out = tmp("rewritten.gguf");
    Status st = w.write(out.toStdString());
    QVERIFY2(st.ok(), st.ok() ? "" : st.error().to_string().c_str());
    auto back = File::open(out.toStdString());
    QVERIFY(back.ok());
    QCOMPARE((*back)->file_size(), f.file_size());
    // Compare through both mappings: header bytes, then every tensor's bytes.
    const uint8_t * a = f.tensors().front().data - f.data_offset() - f.tensors().front().offset;
    const uint8_t * b = (*back)->tensors().front().data - (*back)->data_offset() - (*back)->tensors().front().offset;
    QVERIFY(std::memcmp(a, b, f.file_size()) == 0);
    QFile::remove(out);
}

QTEST_APPLESS_MAIN(TstGguf)
#include "tst_gguf.moc"
