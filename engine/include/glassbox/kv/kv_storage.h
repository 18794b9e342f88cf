// The K/V storage behind the paged cache's page ids: per layer, K and V of
// [n_pages, page_size, n_head_kv * head_dim] in F16 or Q8_0. KvStorage is the
// interface a backend implements (it owns the memory); CpuKvStorage is the CPU one.
#pragma once

#include "glassbox/kv/page_table.h"
#include "glassbox/result.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

namespace gb {
class Model;
}

namespace gb::kv {

enum class KvType { F16, Q8_0 };
const char * kv_type_name(KvType t);
// "f16" / "q8_0" (case-insensitive).
Result<KvType> parse_kv_type(std::string_view name);

// Shape of one layer's rows: a slot holds one token's K row (n_head_kv * head_dim_k
// values) and V row (n_head_kv * head_dim_v values).
struct KvShape {
    int32_t n_layer = 0;
    int32_t n_head_kv = 0;
    int32_t head_dim_k = 0;
    int32_t head_dim_v = 0;
    int32_t n_pages = 0;
    int32_t page_size = 16;
    KvType  type = KvType::F16;
};

// Bytes of one token's K + V over all layers, and of one page (page_size tokens).
// Q8_0: blocks of 32 values (2-byte scale + 32 int8) = 34 bytes per 32 values
// (F16: 64); needs head_dim_k and head_dim_v multiples of 32.
size_t kv_bytes_per_token(const KvShape & s);
inline size_t kv_bytes_per_page(const KvShape & s) { return kv_bytes_per_token(s) * size_t(s.page_size); }
Status kv_check_shape(const KvShape & s);
// The KV shape a model needs for n_pages pages of page_size tokens.
KvShape kv_shape_for(const Model & model, int32_t n_pages, int32_t page_size, KvType type);

class KvStorage {
  public:
    virtual ~KvStorage() = default;
    const KvShape & shape() const { return m_shape; }
    size_t bytes() const { return kv_bytes_per_page(m_shape) * size_t(m_shape.n_pages); }
    // Copy-on-write from the page tables: the first n_tokens slots of src ->
    // dst, K and V of every layer.
    virtual void copy(const PageCopy & c) = 0;

  protected:
    explicit KvStorage(const KvShape & s) : m_shape(s) {}
    KvShape m_shape;
};

// Host memory. Layer il's K: k_layer(il) + page * page_bytes_k() + slot * slot_bytes_k();
// a slot's row is n_head_kv heads of head_dim_k values (F16) or head_dim_k/32 Q8_0 blocks each.
class CpuKvStorage final : public KvStorage {
  public:
    static Result<std::unique_ptr<CpuKvStorage>> create(const KvShape & shape);

    void copy(const PageCopy & c) override;

    size_t slot_bytes_k() const { return m_slot_k; }
    size_t slot_bytes_v() const { return m_slot_v; }
    size_t page_bytes_k() const { return m_slot_k * size_t(m_shape.page_size); }
    size_t page_bytes_v() const { return m_slot_v * size_t(m_shape.page_size); }
    uint8_t * k_layer(int il) { return m_k.get() + size_t(il) * m_layer_k; }
    uint8_t * v_layer(int il) { return m_v.get() + size_t(il) * m_layer_v; }
    const uint8_t * k_layer(int il) const { return m_k.get() + size_t(il) * m_layer_k; }
    const uint8_t * v_layer(int il) const { return m_v.get() + size_t(il) * m_layer_v; }

  private:
    explicit CpuKvStorage(const KvShape & s);
    size_t m_slot_k = 0, m_slot_v = 0, m_layer_k = 0, m_layer_v = 0;
    std::unique_ptr<uint8_t[]> m_k, m_v;
};

}  // namespace gb::kv
