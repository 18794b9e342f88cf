// CPU K/V page storage (F16 or Q8_0) and the byte accounting of both types.
#include "glassbox/kv/kv_storage.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <new>

namespace gb::kv {

const char * kv_type_name(KvType t) { return t == KvType::Q8_0 ? "q8_0" : "f16"; }

Result<KvType> parse_kv_type(std::string_view name) {
    std::string s(name);
    for (char & c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
    if (s == "f16") return KvType::F16;
    if (s == "q8_0" || s == "q8") return KvType::Q8_0;
    return make_error(ErrorCode::InvalidArgument, "unknown KV cache type '" + std::string(name) + "' (f16 or q8_0)");
}

namespace {
// Bytes of a row of n values.
size_t row_bytes(KvType t, int64_t n) { return t == KvType::Q8_0 ? size_t(n / 32) * 34 : size_t(n) * 2; }
}  // namespace

size_t kv_bytes_per_token(const KvShape & s) {
    return size_t(s.n_layer) * (row_bytes(s.type, int64_t(s.n_head_kv) * s.head_dim_k) + row_bytes(s.type, int64_t(s.n_head_kv) * s.head_dim_v));
}

Status kv_check_shape(const KvShape & s) {
    if (s.n_layer < 1 || s.n_head_kv < 1 || s.head_dim_k < 1 || s.head_dim_v < 1)
        return make_error(ErrorCode::InvalidArgument, "KV storage: bad model shape");
    if (s.n_pages < 1 || s.page_size < 1)
        return make_error(ErrorCode::InvalidArgument, "KV storage: need n_pages >= 1 and page_size >= 1 (got " +
                                                          std::to_string(s.n_pages) + ", " + std::to_string(s.page_size) + ")");
    if (s.type == KvType::Q8_0 && (s.head_dim_k % 32 != 0 || s.head_dim_v % 32 != 0))
        return make_error(ErrorCode::Unsupported, "Q8_0 KV cache needs head dims that are multiples of 32 (model has " +
                                                      std::to_string(s.head_dim_k) + "/" + std::to_string(s.head_dim_v) + ")");
    return {};
}

CpuKvStorage::CpuKvStorage(const KvShape & s) : KvStorage(s) {
    m_slot_k  = row_bytes(s.type, int64_t(s.n_head_kv) * s.head_dim_k);
    m_slot_v  = row_bytes(s.type, int64_t(s.n_head_kv) * s.head_dim_v);
    m_layer_k = m_slot_k * size_t(s.page_size) * size_t(s.n_pages);
    m_layer_v = m_slot_v * size_t(s.page_size) * size_t(s.n_pages);
}

Result<std::unique_ptr<CpuKvStorage>> CpuKvStorage::create(const KvShape & shape) {
    GB_TRY_STATUS(kv_check_shape(shape));
    std::unique_ptr<CpuKvStorage> st(new CpuKvStorage(shape));
    try {
        // NOTE: left uninitialized; a slot is written before any query reads it
        st->m_k.reset(new uint8_t[st->m_layer_k * size_t(shape.n_layer)]);
        st->m_v.reset(new uint8_t[st->m_layer_v * size_t(shape.n_layer)]);
    } catch (const std::bad_alloc &) {
        return make_error(ErrorCode::OutOfMemory, "cannot allocate a KV cache of " + std::to_string(shape.n_pages) + " pages (" +
                                                      std::to_string(st->bytes() >> 20) + " MiB)");
    }
    return Result<std::unique_ptr<CpuKvStorage>>(std::move(st));
}

void CpuKvStorage::copy(const PageCopy & c) {
    const int32_t n = std::clamp(c.n_tokens, 0, m_shape.page_size);
    for (int il = 0; il < m_shape.n_layer; ++il) {
        std::memcpy(k_layer(il) + size_t(c.dst) * page_bytes_k(), k_layer(il) + size_t(c.src) * page_bytes_k(), size_t(n) * m_slot_k);
        std::memcpy(v_layer(il) + size_t(c.dst) * page_bytes_v(), v_layer(il) + size_t(c.src) * page_bytes_v(), size_t(n) * m_slot_v);
    }
}

}  // namespace gb::kv
