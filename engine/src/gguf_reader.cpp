// Validating GGUF v2/v3 reader: maps the file read-only and checks every count,
// length, type and offset against the bytes actually present before using it.
// Errors name the file, the byte offset and the metadata key or tensor.
#include "glassbox/gguf.h"

#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace gb::gguf {

static_assert(std::endian::native == std::endian::little, "the GGUF reader assumes a little-endian host");

namespace {

constexpr uint32_t k_magic = 0x46554747;          // "GGUF" read as little-endian u32
constexpr int      k_max_array_depth = 8;         // arrays nested deeper than this are rejected
constexpr uint64_t k_max_values = uint64_t(1) << 23;  // metadata values per file: caps memory at ~400 MB
constexpr uint64_t k_default_alignment = 32;
constexpr int      k_max_dims = 4;

bool valid_value_type(uint32_t t) { return t <= static_cast<uint32_t>(ValueType::FLOAT64); }

// On-disk size of a fixed-size value type; 0 for STRING and ARRAY.
uint64_t fixed_size(ValueType t) {
    switch (t) {
        case ValueType::UINT8: case ValueType::INT8: case ValueType::BOOL: return 1;
        case ValueType::UINT16: case ValueType::INT16: return 2;
        case ValueType::UINT32: case ValueType::INT32: case ValueType::FLOAT32: return 4;
        case ValueType::UINT64: case ValueType::INT64: case ValueType::FLOAT64: return 8;
        case ValueType::STRING: case ValueType::ARRAY: return 0;
    }
    return 0;
}

// Smallest number of bytes one value of type t can take on disk.
uint64_t min_size(ValueType t) {
    if (t == ValueType::STRING) return 8;   // length
    if (t == ValueType::ARRAY) return 12;   // element type + count
    return fixed_size(t);
}

std::string quoted(std::string_view s) {
    std::string out = "'";
    for (char c : s.substr(0, 200)) out += (static_cast<unsigned char>(c) < 0x20) ? '?' : c;
    if (s.size() > 200) out += "...";
    out += "'";
    return out;
}

}  // namespace

// Parses the mapped bytes into a File. Context (which key / tensor / array
// item is being read) is kept cheaply and turned into text only on error.
class Parser {
  public:
    Parser(File & file, const uint8_t * base, uint64_t size) : m_file(file), m_base(base), m_size(size) {}

    Status parse() {
        uint32_t magic = 0, version = 0;
        uint64_t n_tensors = 0, n_kv = 0;
        m_what = "magic";
        GB_TRY_STATUS(read_pod(magic));
        if (magic != k_magic) {
            char buf[64];
            std::snprintf(buf, sizeof buf, "bad magic %02x %02x %02x %02x (expected \"GGUF\")", m_base[0], m_base[1],
                          m_base[2], m_base[3]);
            return fail(0, buf);
        }
        m_what = "version";
        GB_TRY_STATUS(read_pod(version));
        if (version == 1) {
            return fail(4, "GGUF version 1 is not supported (it is obsolete; only versions 2 and 3 are read)");
        }
        if (version != 2 && version != 3) {
            std::string msg = "unsupported GGUF version " + std::to_string(version) + " (only 2 and 3 are read)";
            if (version == 0x02000000 || version == 0x03000000) msg += "; the file looks big-endian";
            return fail(4, msg);
        }
        m_file.m_version = version;

        m_what = "tensor count";
        GB_TRY_STATUS(read_pod(n_tensors));
        m_what = "metadata key-value count";
        GB_TRY_STATUS(read_pod(n_kv));
        // Each key-value takes at least 8 (key length) + 4 (type) + 1 bytes,
        // each tensor info at least 8 + 4 + 8 + 4 + 8.
        if (n_kv > left() / 13) {
            return fail(16, "metadata key-value count " + std::to_string(n_kv) + " cannot fit in the " +
                                std::to_string(left()) + " bytes left in the file");
        }
        if (n_tensors > left() / 32) {
            return fail(8, "tensor count " + std::to_string(n_tensors) + " cannot fit in the " +
                               std::to_string(left()) + " bytes left in the file");
        }

        GB_TRY_STATUS(parse_metadata(n_kv));
        GB_TRY_STATUS(parse_alignment());
        GB_TRY_STATUS(parse_tensor_infos(n_tensors));
        return check_tensor_data();
    }

  private:
    File &          m_file;
    const uint8_t * m_base;
    uint64_t        m_size;
    uint64_t        m_pos = 0;
    uint64_t        m_n_values = 0;

    // Error context: m_what, optionally followed by a quoted key / tensor name
    // and array indices, e.g. "metadata key 'x' item [3][1]".
    const char *        m_what = "";
    const std::string * m_name = nullptr;
    const char *        m_field = nullptr;
    uint64_t            m_index[k_max_array_depth + 1] = {};
    int                 m_depth = 0;

    uint64_t left() const { return m_size - m_pos; }

    std::string context() const {
        std::string s = m_what;
        if (m_name) {
            s += ' ';
            s += quoted(*m_name);
        }
        for (int i = 0; i < m_depth; ++i) {
            s += '[';
            s += std::to_string(m_index[i]);
            s += ']';
        }
        if (m_field) {
            s += " ";
            s += m_field;
        }
        return s;
    }

    Error fail(uint64_t offset, const std::string & problem) const {
        return make_error(ErrorCode::InvalidFile, m_file.m_path + ": at byte offset " + std::to_string(offset) + ": " +
                                                      context() + ": " + problem);
    }

    Status need(uint64_t n) const {
        if (n <= left()) return Status::success();
        return fail(m_pos, "file ends after " + std::to_string(left()) + " more bytes, " + std::to_string(n) +
                               " needed (truncated file?)");
    }

    template <typename T>
    Status read_pod(T & out) {
        GB_TRY_STATUS(need(sizeof(T)));
        std::memcpy(&out, m_base + m_pos, sizeof(T));
        m_pos += sizeof(T);
        return Status::success();
    }

    Status read_string(std::string & out) {
        const uint64_t at = m_pos;
        uint64_t len = 0;
        GB_TRY_STATUS(read_pod(len));
        if (len > left()) {
            return fail(at, "string length " + std::to_string(len) + " exceeds the " + std::to_string(left()) +
                                " bytes left in the file");
        }
        out.assign(reinterpret_cast<const char *>(m_base + m_pos), len);
        m_pos += len;
        return Status::success();
    }

    Status count_values(uint64_t at, uint64_t n) {
        if (n > k_max_values - m_n_values) {
            return fail(at, "more than " + std::to_string(k_max_values) + " metadata values in the file");
        }
        m_n_values += n;
        return Status::success();
    }

    template <typename T>
    T take() {
        T v;
        std::memcpy(&v, m_base + m_pos, sizeof(T));
        m_pos += sizeof(T);
        return v;
    }

    // Reads a fixed-size value whose bytes are known to be present.
    Status read_fixed(ValueType t, Value & out) {
        const uint64_t at = m_pos;
        switch (t) {
            case ValueType::UINT8: out = Value::u64(t, take<uint8_t>()); break;
            case ValueType::INT8: out = Value::i64(t, take<int8_t>()); break;
            case ValueType::UINT16: out = Value::u64(t, take<uint16_t>()); break;
            case ValueType::INT16: out = Value::i64(t, take<int16_t>()); break;
            case ValueType::UINT32: out = Value::u64(t, take<uint32_t>()); break;
            case ValueType::INT32: out = Value::i64(t, take<int32_t>()); break;
            case ValueType::UINT64: out = Value::u64(t, take<uint64_t>()); break;
            case ValueType::INT64: out = Value::i64(t, take<int64_t>()); break;
            case ValueType::FLOAT32: out = Value::f64(t, take<float>()); break;
            case ValueType::FLOAT64: out = Value::f64(t, take<double>()); break;
            case ValueType::BOOL: {
                const uint8_t b = take<uint8_t>();
                if (b > 1) return fail(at, "bool value " + std::to_string(b) + " is neither 0 nor 1");
                out = Value::boolean(b != 0);
                break;
            }
            case ValueType::STRING: case ValueType::ARRAY: return fail(at, "internal: not a fixed-size type");
        }
        return Status::success();
    }

    // depth = number of enclosing arrays.
    Status read_value(ValueType t, int depth, Value & out) {
        if (t == ValueType::STRING) {
            std::string s;
            GB_TRY_STATUS(read_string(s));
            out = Value::string(std::move(s));
            return Status::success();
        }
        if (t == ValueType::ARRAY) return read_array(depth, out);
        GB_TRY_STATUS(need(fixed_size(t)));
        return read_fixed(t, out);
    }

    Status read_array(int depth, Value & out) {
        const uint64_t type_at = m_pos;
        uint32_t raw_elem = 0;
        uint64_t n = 0;
        GB_TRY_STATUS(read_pod(raw_elem));
        if (!valid_value_type(raw_elem)) {
            return fail(type_at, "unknown array element type " + std::to_string(raw_elem));
        }
        const ValueType elem = static_cast<ValueType>(raw_elem);
        if (elem == ValueType::ARRAY && depth + 1 >= k_max_array_depth) {
            return fail(type_at, "arrays nested more than " + std::to_string(k_max_array_depth) + " deep");
        }
        const uint64_t count_at = m_pos;
        GB_TRY_STATUS(read_pod(n));
        if (n > left() / min_size(elem)) {
            return fail(count_at, "array length " + std::to_string(n) + " of " + value_type_name(elem) +
                                      " cannot fit in the " + std::to_string(left()) + " bytes left in the file");
        }
        GB_TRY_STATUS(count_values(count_at, n));
        std::vector<Value> items(n);
        m_depth = depth + 1;
        if (fixed_size(elem) != 0) {
            // Bytes already checked above: n * size <= left().
            for (uint64_t i = 0; i < n; ++i) {
                m_index[depth] = i;
                GB_TRY_STATUS(read_fixed(elem, items[i]));
            }
        } else {
            for (uint64_t i = 0; i < n; ++i) {
                m_index[depth] = i;
                m_depth = depth + 1;
                GB_TRY_STATUS(read_value(elem, depth + 1, items[i]));
            }
        }
        m_depth = depth;
        out = Value::array(elem, std::move(items));
        return Status::success();
    }

    Status parse_metadata(uint64_t n_kv) {
        m_file.m_kv.reserve(n_kv);
        for (uint64_t i = 0; i < n_kv; ++i) {
            const std::string index_text = "metadata entry #" + std::to_string(i);
            m_what = index_text.c_str();
            m_name = nullptr;
            m_field = "key";
            const uint64_t key_at = m_pos;
            std::string key;
            GB_TRY_STATUS(read_string(key));
            if (key.empty()) return fail(key_at, "empty key");

            m_what = "metadata key";
            m_name = &key;
            m_field = nullptr;
            if (m_file.m_kv_index.count(key)) return fail(key_at, "duplicate key");
            m_field = "value type";
            const uint64_t type_at = m_pos;
            uint32_t raw_type = 0;
            GB_TRY_STATUS(read_pod(raw_type));
            if (!valid_value_type(raw_type)) return fail(type_at, "unknown value type " + std::to_string(raw_type));

            m_field = nullptr;
            GB_TRY_STATUS(count_values(type_at, 1));
            Value v;
            GB_TRY_STATUS(read_value(static_cast<ValueType>(raw_type), 0, v));
            if (key == "general.alignment") m_alignment_at = type_at;
            m_file.m_kv_index.emplace(key, m_file.m_kv.size());
            m_file.m_kv.emplace_back(std::move(key), std::move(v));
            m_name = nullptr;
        }
        return Status::success();
    }

    Status parse_alignment() {
        m_file.m_alignment = k_default_alignment;
        const Value * v = m_file.find("general.alignment");
        if (!v) return Status::success();
        m_what = "metadata key 'general.alignment'";
        m_name = nullptr;
        m_field = nullptr;
        if (v->type() != ValueType::UINT32) {
            return fail(m_alignment_at, std::string("must be uint32, found ") + value_type_name(v->type()));
        }
        const uint64_t a = *v->as_uint();
        if (a == 0 || (a & (a - 1)) != 0) {
            return fail(m_alignment_at + 4, "alignment " + std::to_string(a) + " is not a nonzero power of two");
        }
        m_file.m_alignment = a;
        return Status::success();
    }

    Status parse_tensor_infos(uint64_t n_tensors) {
        m_file.m_tensors.reserve(n_tensors);
        m_offset_at.reserve(n_tensors);
        for (uint64_t i = 0; i < n_tensors; ++i) {
            const std::string index_text = "tensor #" + std::to_string(i);
            m_what = index_text.c_str();
            m_name = nullptr;
            m_field = "name";
            TensorInfo t;
            const uint64_t name_at = m_pos;
            GB_TRY_STATUS(read_string(t.name));
            if (t.name.empty()) return fail(name_at, "empty tensor name");
            m_what = "tensor";
            m_name = &t.name;
            m_field = nullptr;
            if (m_file.m_tensor_index.count(t.name)) return fail(name_at, "duplicate tensor name");

            m_field = "n_dims";
            const uint64_t dims_at = m_pos;
            uint32_t n_dims = 0;
            GB_TRY_STATUS(read_pod(n_dims));
            if (n_dims == 0 || n_dims > k_max_dims) {
                return fail(dims_at, "n_dims " + std::to_string(n_dims) + " is not in 1.." + std::to_string(k_max_dims));
            }
            t.n_dims = static_cast<int>(n_dims);
            int64_t n_elements = 1;
            const uint64_t ne0_at = m_pos;
            for (uint32_t d = 0; d < n_dims; ++d) {
                const std::string field = "ne[" + std::to_string(d) + "]";
                m_field = field.c_str();
                const uint64_t at = m_pos;
                uint64_t raw = 0;
                GB_TRY_STATUS(read_pod(raw));
                const int64_t ne = static_cast<int64_t>(raw);
                if (ne <= 0) return fail(at, "dimension " + std::to_string(ne) + " is not positive");
                if (n_elements > INT64_MAX / ne) return fail(at, "element count overflows int64");
                n_elements *= ne;
                t.ne[d] = ne;
            }
            m_field = "type";
            const uint64_t type_at = m_pos;
            uint32_t raw_type = 0;
            GB_TRY_STATUS(read_pod(raw_type));
            const TypeTraits * tr = type_traits(raw_type);
            if (!tr) return fail(type_at, "unknown tensor type id " + std::to_string(raw_type));
            t.type = static_cast<TensorType>(raw_type);
            if (t.ne[0] % tr->block_size != 0) {
                m_field = "ne[0]";
                return fail(ne0_at, "ne[0] = " + std::to_string(t.ne[0]) + " is not a multiple of the " + tr->name +
                                         " block size " + std::to_string(tr->block_size));
            }
            // n_bytes = (ne0 / block) * type_size * rows, checked for overflow.
            const uint64_t rows = static_cast<uint64_t>(n_elements / t.ne[0]);
            uint64_t row_bytes = 0, n_bytes = 0;
            if (__builtin_mul_overflow(static_cast<uint64_t>(t.ne[0] / tr->block_size), tr->type_size, &row_bytes) ||
                __builtin_mul_overflow(row_bytes, rows, &n_bytes) || n_bytes > m_size) {
                return fail(type_at, "tensor data size is larger than the file (" + std::to_string(m_size) + " bytes)");
            }
            t.n_bytes = static_cast<size_t>(n_bytes);

            m_field = "offset";
            m_offset_at.push_back(m_pos);
            GB_TRY_STATUS(read_pod(t.offset));
            m_file.m_tensor_index.emplace(t.name, m_file.m_tensors.size());
            m_file.m_tensors.push_back(std::move(t));
            m_name = nullptr;
        }
        return Status::success();
    }

    Status check_tensor_data() {
        const uint64_t a = m_file.m_alignment;
        // NOTE: m_pos <= m_size and a <= 2^32, so this cannot overflow.
        m_file.m_data_offset = (m_pos + a - 1) / a * a;
        const uint64_t data_start = m_file.m_data_offset;
        for (size_t i = 0; i < m_file.m_tensors.size(); ++i) {
            TensorInfo & t = m_file.m_tensors[i];
            m_what = "tensor";
            m_name = &t.name;
            m_field = "offset";
            const uint64_t at = m_offset_at[i];
            if (t.offset % a != 0) {
                return fail(at, "data offset " + std::to_string(t.offset) + " is not a multiple of the alignment " +
                                    std::to_string(a));
            }
            const bool outside = data_start > m_size || t.offset > m_size - data_start ||
                                 t.n_bytes > m_size - data_start - t.offset;
            if (outside) {
                return fail(at, "data [" + std::to_string(t.offset) + ", +" + std::to_string(t.n_bytes) +
                                    ") relative to the data section at " + std::to_string(data_start) +
                                    " lies outside the file (" + std::to_string(m_size) + " bytes)");
            }
            t.data = m_base + data_start + t.offset;
        }
        m_name = nullptr;
        return Status::success();
    }

    std::vector<uint64_t> m_offset_at;  // file position of each tensor's offset field
    uint64_t              m_alignment_at = 0;  // file position of general.alignment's value type
};

Result<std::unique_ptr<File>> File::open(const std::string & path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return make_error(ErrorCode::Io, path + ": cannot open: " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int err = errno;
        ::close(fd);
        return make_error(ErrorCode::Io, path + ": cannot stat: " + std::strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        return make_error(ErrorCode::Io, path + ": not a regular file");
    }
    std::unique_ptr<File> file(new File());
    file->m_path = path;
    file->m_size = static_cast<uint64_t>(st.st_size);
    if (file->m_size == 0) {
        ::close(fd);
        return make_error(ErrorCode::InvalidFile, path + ": at byte offset 0: magic: the file is empty (0 bytes)");
    }
    void * map = ::mmap(nullptr, file->m_size, PROT_READ, MAP_PRIVATE, fd, 0);
    const int map_err = errno;
    ::close(fd);
    if (map == MAP_FAILED) return make_error(ErrorCode::Io, path + ": cannot mmap: " + std::strerror(map_err));
    file->m_map = map;

    Parser parser(*file, static_cast<const uint8_t *>(map), file->m_size);
    Status st_parse = parser.parse();
    if (!st_parse.ok()) return st_parse.error();
    return file;
}

File::~File() {
    if (m_map) ::munmap(m_map, m_size);
}

const Value * File::find(std::string_view key) const {
    auto it = m_kv_index.find(key);
    return it == m_kv_index.end() ? nullptr : &m_kv[it->second].second;
}

std::optional<int64_t> File::get_int(std::string_view key) const {
    const Value * v = find(key);
    return v ? v->as_int() : std::nullopt;
}

std::optional<double> File::get_float(std::string_view key) const {
    const Value * v = find(key);
    return v ? v->as_float() : std::nullopt;
}

std::optional<bool> File::get_bool(std::string_view key) const {
    const Value * v = find(key);
    return v ? v->as_bool() : std::nullopt;
}

std::optional<std::string_view> File::get_string(std::string_view key) const {
    const Value * v = find(key);
    const std::string * s = v ? v->as_string() : nullptr;
    if (!s) return std::nullopt;
    return std::string_view(*s);
}

const Value::Array * File::get_array(std::string_view key) const {
    const Value * v = find(key);
    return v ? v->as_array() : nullptr;
}

const TensorInfo * File::find_tensor(std::string_view name) const {
    auto it = m_tensor_index.find(name);
    return it == m_tensor_index.end() ? nullptr : &m_tensors[it->second];
}

}  // namespace gb::gguf
