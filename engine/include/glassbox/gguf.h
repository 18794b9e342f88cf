// GGUF v2/v3 files: a validating mmap reader and a writer.
// Reader: every metadata type (nested arrays too), general.alignment, tensor
// table and data offsets, each checked against the file; errors name the file,
// the byte offset and the field or tensor.
#pragma once

#include "glassbox/result.h"
#include "glassbox/tensor_type.h"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace gb::gguf {

enum class ValueType : uint32_t {
    UINT8 = 0, INT8 = 1, UINT16 = 2, INT16 = 3, UINT32 = 4, INT32 = 5,
    FLOAT32 = 6, BOOL = 7, STRING = 8, ARRAY = 9, UINT64 = 10, INT64 = 11, FLOAT64 = 12,
};
const char * value_type_name(ValueType t);

// A metadata value. Integers are widened to int64/uint64, floats to double;
// type() keeps the on-disk type so files can be written back unchanged.
class Value {
  public:
    struct Array {
        ValueType          elem_type = ValueType::UINT8;
        std::vector<Value> items;
    };

    Value() = default;
    static Value u64(ValueType t, uint64_t v);
    static Value i64(ValueType t, int64_t v);
    static Value f64(ValueType t, double v);
    static Value boolean(bool v);
    static Value string(std::string v);
    static Value array(ValueType elem_type, std::vector<Value> items);

    ValueType type() const { return m_type; }
    bool is_integer() const;
    bool is_float() const;

    std::optional<int64_t>  as_int() const;    // any integer type (range-checked) or bool
    std::optional<uint64_t> as_uint() const;   // non-negative integers
    std::optional<double>   as_float() const;  // floats and integers
    std::optional<bool>     as_bool() const;
    const std::string *     as_string() const;
    const Array *           as_array() const;

    std::string to_display(size_t max_items = 8) const;  // for `glassbox-cli info`

  private:
    ValueType m_type = ValueType::UINT8;
    std::variant<uint64_t, int64_t, double, bool, std::string, std::shared_ptr<Array>> m_v;
};

struct TensorInfo {
    std::string     name;
    TensorType      type = TensorType::F32;
    int             n_dims = 0;
    int64_t         ne[4] = {1, 1, 1, 1};  // ne[0] is the contiguous (row) dimension
    uint64_t        offset = 0;            // relative to the start of the data section
    size_t          n_bytes = 0;
    const uint8_t * data = nullptr;        // into the mapping

    int64_t n_elements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
};

class File {
  public:
    // Opens, maps (read-only; unmapped by ~File) and validates. Never crashes or
    // hangs on hostile input; allocations are bounded by the file size. Limits:
    // arrays nested at most 8 deep, at most 2^23 metadata values in all.
    static Result<std::unique_ptr<File>> open(const std::string & path);
    ~File();
    File(const File &) = delete;
    File & operator=(const File &) = delete;

    const std::string & path() const { return m_path; }
    uint32_t version() const { return m_version; }
    uint64_t alignment() const { return m_alignment; }
    uint64_t data_offset() const { return m_data_offset; }
    uint64_t file_size() const { return m_size; }

    // Metadata in file order.
    const std::vector<std::pair<std::string, Value>> & metadata() const { return m_kv; }
    const Value * find(std::string_view key) const;
    std::optional<int64_t>          get_int(std::string_view key) const;
    std::optional<double>           get_float(std::string_view key) const;
    std::optional<bool>             get_bool(std::string_view key) const;
    std::optional<std::string_view> get_string(std::string_view key) const;
    const Value::Array *            get_array(std::string_view key) const;

    const std::vector<TensorInfo> & tensors() const { return m_tensors; }
    const TensorInfo * find_tensor(std::string_view name) const;

  private:
    File() = default;
    friend class Parser;
    std::string m_path;
    uint32_t    m_version = 0;
    uint64_t    m_alignment = 32;
    uint64_t    m_data_offset = 0;
    uint64_t    m_size = 0;
    void *      m_map = nullptr;
    std::vector<std::pair<std::string, Value>> m_kv;
    std::map<std::string, size_t, std::less<>> m_kv_index;
    std::vector<TensorInfo> m_tensors;
    std::map<std::string, size_t, std::less<>> m_tensor_index;
};

// Writes GGUF v3 files that llama.cpp loads. Tensor data is produced per
// tensor at write time (by copy or by callback) so multi-GB files stream.
class Writer {
  public:
    void set(std::string key, Value v);  // replaces an existing key, keeps order
    void set_u32(std::string key, uint32_t v);
    void set_i32(std::string key, int32_t v);
    void set_u64(std::string key, uint64_t v);
    void set_f32(std::string key, float v);
    void set_bool(std::string key, bool v);
    void set_string(std::string key, std::string v);
    void set_array_string(std::string key, const std::vector<std::string> & v);
    void set_array_f32(std::string key, const std::vector<float> & v);
    void set_array_i32(std::string key, const std::vector<int32_t> & v);
    void set_alignment(uint32_t alignment);  // also writes general.alignment

    // ne[0] is the row length; bytes must equal row_size(type, ne[0]) * rows.
    using FillFn = std::function<void(uint8_t * dst, size_t n_bytes)>;
    Status add_tensor(std::string name, TensorType type, std::vector<int64_t> ne, std::vector<uint8_t> data);
    Status add_tensor(std::string name, TensorType type, std::vector<int64_t> ne, FillFn fill);

    // Writes path + ".tmp", then renames it over path; on any error (I/O,
    // invalid value) path is left untouched and the .tmp file removed.
    Status write(const std::string & path) const;

  private:
    struct PendingTensor {
        std::string          name;
        TensorType           type;
        std::vector<int64_t> ne;
        size_t               n_bytes;
        std::vector<uint8_t> data;
        FillFn               fill;
    };
    std::vector<std::pair<std::string, Value>> m_kv;
    std::vector<PendingTensor> m_tensors;
    uint32_t m_alignment = 32;
};

}  // namespace gb::gguf
