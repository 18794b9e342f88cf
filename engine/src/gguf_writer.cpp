// GGUF v3 writer: metadata in insertion order, tensor infos, then tensor data
// padded to the alignment, streamed tensor by tensor into path.tmp, which is
// renamed over path only once everything was written and synced.
#include "glassbox/gguf.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <limits>
#include <fcntl.h>
#include <unistd.h>

namespace gb::gguf {

namespace {

constexpr uint32_t k_default_alignment = 32;
constexpr int      k_max_array_depth = 8;    // as the reader
constexpr size_t   k_max_tensor_name = 63;   // llama.cpp's GGML_MAX_NAME is 64 including the NUL

// Buffered writes to a file descriptor; the first failure sticks.
class Sink {
  public:
    Sink(int fd, std::string path) : m_fd(fd), m_path(std::move(path)) { m_buf.reserve(k_buf_size); }

    void bytes(const void * p, size_t n) {
        if (!m_error.empty()) return;
        const auto * c = static_cast<const uint8_t *>(p);
        if (n >= k_buf_size) {
            flush();
            write_all(c, n);
        } else {
            if (m_buf.size() + n > k_buf_size) flush();
            m_buf.insert(m_buf.end(), c, c + n);
        }
        m_written += n;
    }
    template <typename T>
    void pod(T v) { bytes(&v, sizeof v); }
    void str(const std::string & s) {
        pod<uint64_t>(s.size());
        bytes(s.data(), s.size());
    }
    void pad_to(uint64_t alignment) {
        static const uint8_t zeros[256] = {};
        uint64_t n = (alignment - m_written % alignment) % alignment;
        while (n > 0) {
            const size_t k = static_cast<size_t>(std::min<uint64_t>(n, sizeof zeros));
            bytes(zeros, k);
            n -= k;
        }
    }
    void flush() {
        if (!m_error.empty() || m_buf.empty()) return;
        write_all(m_buf.data(), m_buf.size());
        m_buf.clear();
    }
    uint64_t written() const { return m_written; }
    const std::string & error() const { return m_error; }

  private:
    static constexpr size_t k_buf_size = size_t(1) << 20;
    int                  m_fd;
    std::string          m_path;
    std::vector<uint8_t> m_buf;
    uint64_t             m_written = 0;
    std::string          m_error;

    void write_all(const uint8_t * p, size_t n) {
        while (n > 0 && m_error.empty()) {
            const ssize_t k = ::write(m_fd, p, std::min<size_t>(n, size_t(1) << 30));
            if (k < 0) {
                if (errno == EINTR) continue;
                m_error = m_path + ": write failed: " + std::strerror(errno);
            } else if (k == 0) {
                m_error = m_path + ": write failed: no progress";
            } else {
                p += k;
                n -= static_cast<size_t>(k);
            }
        }
    }
};

Error bad_arg(const std::string & msg) { return make_error(ErrorCode::InvalidArgument, msg); }

template <typename T>
bool fits(const Value & v, bool is_signed) {
    if (is_signed) {
        auto i = v.as_int();
        return i && *i >= static_cast<int64_t>(std::numeric_limits<T>::min()) &&
               *i <= static_cast<int64_t>(std::numeric_limits<T>::max());
    }
    auto u = v.as_uint();
    return u && *u <= static_cast<uint64_t>(std::numeric_limits<T>::max());
}

// Checks that v can be written as its type (integer ranges, array element
// types, nesting depth) before any byte is written.
Status check_value(const std::string & key, const Value & v, int depth) {
    const auto bad = [&](const std::string & what) {
        return bad_arg("gguf writer: key '" + key + "': " + what);
    };
    bool ok = true;
    switch (v.type()) {
        case ValueType::UINT8: ok = fits<uint8_t>(v, false); break;
        case ValueType::INT8: ok = fits<int8_t>(v, true); break;
        case ValueType::UINT16: ok = fits<uint16_t>(v, false); break;
        case ValueType::INT16: ok = fits<int16_t>(v, true); break;
        case ValueType::UINT32: ok = fits<uint32_t>(v, false); break;
        case ValueType::INT32: ok = fits<int32_t>(v, true); break;
        case ValueType::UINT64: ok = v.as_uint().has_value(); break;
        case ValueType::INT64: ok = v.as_int().has_value() && !v.as_bool(); break;
        case ValueType::FLOAT32: case ValueType::FLOAT64: ok = v.as_float().has_value(); break;
        case ValueType::BOOL: ok = v.as_bool().has_value(); break;
        case ValueType::STRING: ok = v.as_string() != nullptr; break;
        case ValueType::ARRAY: {
            const Value::Array * a = v.as_array();
            if (!a) return bad("array value without items");
            if (a->elem_type == ValueType::ARRAY && depth + 1 >= k_max_array_depth) {
                return bad("arrays nested more than " + std::to_string(k_max_array_depth) + " deep");
            }
            for (const Value & item : a->items) {
                if (item.type() != a->elem_type) {
                    return bad(std::string("array of ") + value_type_name(a->elem_type) + " holds a " +
                               value_type_name(item.type()));
                }
                GB_TRY_STATUS(check_value(key, item, depth + 1));
            }
            break;
        }
        default: return bad("unknown value type " + std::to_string(static_cast<uint32_t>(v.type())));
    }
    if (!ok) return bad(std::string("value does not fit its type ") + value_type_name(v.type()));
    return Status::success();
}

void write_value(Sink & out, const Value & v) {
    switch (v.type()) {
        case ValueType::UINT8: out.pod(static_cast<uint8_t>(*v.as_uint())); break;
        case ValueType::INT8: out.pod(static_cast<int8_t>(*v.as_int())); break;
        case ValueType::UINT16: out.pod(static_cast<uint16_t>(*v.as_uint())); break;
        case ValueType::INT16: out.pod(static_cast<int16_t>(*v.as_int())); break;
        case ValueType::UINT32: out.pod(static_cast<uint32_t>(*v.as_uint())); break;
        case ValueType::INT32: out.pod(static_cast<int32_t>(*v.as_int())); break;
        case ValueType::UINT64: out.pod(*v.as_uint()); break;
        case ValueType::INT64: out.pod(*v.as_int()); break;
        case ValueType::FLOAT32: out.pod(static_cast<float>(*v.as_float())); break;
        case ValueType::FLOAT64: out.pod(*v.as_float()); break;
        case ValueType::BOOL: out.pod(static_cast<uint8_t>(*v.as_bool() ? 1 : 0)); break;
        case ValueType::STRING: out.str(*v.as_string()); break;
        case ValueType::ARRAY: {
            const Value::Array * a = v.as_array();
            out.pod(static_cast<uint32_t>(a->elem_type));
            out.pod(static_cast<uint64_t>(a->items.size()));
            for (const Value & item : a->items) write_value(out, item);
            break;
        }
    }
}

}  // namespace

void Writer::set(std::string key, Value v) {
    for (auto & kv : m_kv) {
        if (kv.first == key) {
            kv.second = std::move(v);
            return;
        }
    }
    m_kv.emplace_back(std::move(key), std::move(v));
}

void Writer::set_u32(std::string key, uint32_t v) { set(std::move(key), Value::u64(ValueType::UINT32, v)); }
void Writer::set_i32(std::string key, int32_t v) { set(std::move(key), Value::i64(ValueType::INT32, v)); }
void Writer::set_u64(std::string key, uint64_t v) { set(std::move(key), Value::u64(ValueType::UINT64, v)); }
void Writer::set_f32(std::string key, float v) { set(std::move(key), Value::f64(ValueType::FLOAT32, v)); }
void Writer::set_bool(std::string key, bool v) { set(std::move(key), Value::boolean(v)); }
void Writer::set_string(std::string key, std::string v) { set(std::move(key), Value::string(std::move(v))); }

void Writer::set_array_string(std::string key, const std::vector<std::string> & v) {
    std::vector<Value> items;
    items.reserve(v.size());
    for (const auto & s : v) items.push_back(Value::string(s));
    set(std::move(key), Value::array(ValueType::STRING, std::move(items)));
}

void Writer::set_array_f32(std::string key, const std::vector<float> & v) {
    std::vector<Value> items;
    items.reserve(v.size());
    for (float f : v) items.push_back(Value::f64(ValueType::FLOAT32, f));
    set(std::move(key), Value::array(ValueType::FLOAT32, std::move(items)));
}

void Writer::set_array_i32(std::string key, const std::vector<int32_t> & v) {
    std::vector<Value> items;
    items.reserve(v.size());
    for (int32_t i : v) items.push_back(Value::i64(ValueType::INT32, i));
    set(std::move(key), Value::array(ValueType::INT32, std::move(items)));
}

void Writer::set_alignment(uint32_t alignment) {
    m_alignment = alignment;
    if (alignment != k_default_alignment) {
        set_u32("general.alignment", alignment);
    } else {
        std::erase_if(m_kv, [](const auto & kv) { return kv.first == "general.alignment"; });
    }
}

namespace {

// Validates name / type / shape and returns the tensor's byte size.
Result<size_t> check_tensor(const std::string & name, TensorType type, const std::vector<int64_t> & ne) {
    const std::string ctx = "gguf writer: tensor '" + name + "': ";
    if (name.empty()) return bad_arg("gguf writer: empty tensor name");
    if (name.size() > k_max_tensor_name) {
        return bad_arg(ctx + "name longer than " + std::to_string(k_max_tensor_name) + " bytes");
    }
    const TypeTraits * tr = type_traits(static_cast<uint32_t>(type));
    if (!tr) return bad_arg(ctx + "unknown type id " + std::to_string(static_cast<uint32_t>(type)));
    if (ne.empty() || ne.size() > 4) return bad_arg(ctx + "needs 1 to 4 dimensions");
    int64_t n = 1;
    for (int64_t d : ne) {
        if (d <= 0) return bad_arg(ctx + "dimension " + std::to_string(d) + " is not positive");
        if (n > INT64_MAX / d) return bad_arg(ctx + "element count overflows");
        n *= d;
    }
    if (ne[0] % tr->block_size != 0) {
        return bad_arg(ctx + "ne[0] = " + std::to_string(ne[0]) + " is not a multiple of the " + tr->name +
                       " block size " + std::to_string(tr->block_size));
    }
    size_t n_bytes = 0;
    if (__builtin_mul_overflow(row_size(type, ne[0]), static_cast<uint64_t>(n / ne[0]), &n_bytes)) {
        return bad_arg(ctx + "byte size overflows");
    }
    return n_bytes;
}

}  // namespace

Status Writer::add_tensor(std::string name, TensorType type, std::vector<int64_t> ne, std::vector<uint8_t> data) {
    auto n_bytes = check_tensor(name, type, ne);
    if (!n_bytes.ok()) return n_bytes.error();
    if (data.size() != *n_bytes) {
        return bad_arg("gguf writer: tensor '" + name + "': data has " + std::to_string(data.size()) +
                       " bytes, its shape and type need " + std::to_string(*n_bytes));
    }
    for (const auto & t : m_tensors) {
        if (t.name == name) return bad_arg("gguf writer: duplicate tensor name '" + name + "'");
    }
    m_tensors.push_back(PendingTensor{std::move(name), type, std::move(ne), *n_bytes, std::move(data), nullptr});
    return Status::success();
}

Status Writer::add_tensor(std::string name, TensorType type, std::vector<int64_t> ne, FillFn fill) {
    auto n_bytes = check_tensor(name, type, ne);
    if (!n_bytes.ok()) return n_bytes.error();
    if (!fill) return bad_arg("gguf writer: tensor '" + name + "': empty fill function");
    for (const auto & t : m_tensors) {
        if (t.name == name) return bad_arg("gguf writer: duplicate tensor name '" + name + "'");
    }
    m_tensors.push_back(PendingTensor{std::move(name), type, std::move(ne), *n_bytes, {}, std::move(fill)});
    return Status::success();
}

Status Writer::write(const std::string & path) const {
    // The alignment actually written is the one the file declares.
    uint64_t alignment = k_default_alignment;
    for (const auto & [key, v] : m_kv) {
        if (key.empty()) return bad_arg("gguf writer: empty metadata key");
        GB_TRY_STATUS(check_value(key, v, 0));
        if (key == "general.alignment") {
            const auto a = v.as_uint();
            if (v.type() != ValueType::UINT32 || !a || *a == 0 || (*a & (*a - 1)) != 0) {
                return bad_arg("gguf writer: general.alignment must be a uint32 nonzero power of two");
            }
            alignment = *a;
        }
    }

    const std::string tmp = path + ".tmp";
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return make_error(ErrorCode::Io, tmp + ": cannot create: " + std::strerror(errno));
    Sink out(fd, tmp);
    const auto abandon = [&](const std::string & msg) {
        ::close(fd);
        ::unlink(tmp.c_str());
        return make_error(ErrorCode::Io, msg);
    };

    out.bytes("GGUF", 4);
    out.pod<uint32_t>(3);
    out.pod<uint64_t>(m_tensors.size());
    out.pod<uint64_t>(m_kv.size());
    for (const auto & [key, v] : m_kv) {
        out.str(key);
        out.pod(static_cast<uint32_t>(v.type()));
        write_value(out, v);
    }
    uint64_t offset = 0;  // relative to the data section; each tensor starts aligned
    for (const auto & t : m_tensors) {
        out.str(t.name);
        out.pod(static_cast<uint32_t>(t.ne.size()));
        for (int64_t d : t.ne) out.pod(static_cast<uint64_t>(d));
        out.pod(static_cast<uint32_t>(t.type));
        out.pod(offset);
        offset += (t.n_bytes + alignment - 1) / alignment * alignment;
    }
    out.pad_to(alignment);

    std::vector<uint8_t> buf;
    for (const auto & t : m_tensors) {
        if (t.fill) {
            // One tensor in memory at a time.
            buf.assign(t.n_bytes, 0);
            t.fill(buf.data(), buf.size());
            out.bytes(buf.data(), buf.size());
            std::vector<uint8_t>().swap(buf);
        } else {
            out.bytes(t.data.data(), t.data.size());
        }
        out.pad_to(alignment);
        if (!out.error().empty()) break;
    }
    out.flush();
    if (!out.error().empty()) return abandon(out.error());
    if (::fsync(fd) != 0) return abandon(tmp + ": fsync failed: " + std::strerror(errno));
    if (::close(fd) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        return make_error(ErrorCode::Io, tmp + ": close failed: " + std::strerror(err));
    }
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
        const int err = errno;
        ::unlink(tmp.c_str());
        return make_error(ErrorCode::Io, path + ": cannot rename " + tmp + " over it: " + std::strerror(err));
    }
    return Status::success();
}

}  // namespace gb::gguf
