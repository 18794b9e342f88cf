// Weight upload shared by the CUDA Context and the batched forward (see upload.h).
#include "upload.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace gb::cuda {

Result<DevMat> upload_matrix(const Model & model, const std::string & name, int64_t ne0, int64_t ne1, bool required,
                             const DeviceAlloc & alloc) {
    const gguf::TensorInfo * t = model.file().find_tensor(name);
    if (!t) {
        if (required) return make_error(ErrorCode::InvalidFile, "CUDA: missing tensor " + name);
        return DevMat{};
    }
    if (t->ne[0] != ne0 || t->ne[1] != ne1) return make_error(ErrorCode::InvalidFile, "CUDA: tensor " + name + " has an unexpected shape");
    if (!device_supported(t->type)) {
        return make_error(ErrorCode::Unsupported, std::string("CUDA: tensor ") + name + " has type " + type_name(t->type) +
                                                      ", which the CUDA kernels do not support");
    }
    if (ne0 % 32 != 0) return make_error(ErrorCode::Unsupported, "CUDA: tensor " + name + " has rows not a multiple of 32 values");
    DevMat m = dev_layout(t->type, ne0, ne1);
    auto mem = alloc(m.stride * size_t(ne1));
    if (!mem) return mem.error();
    uint8_t * d = static_cast<uint8_t *>(*mem);
    const size_t rs = row_size(t->type, ne0);
    if (!split_layout(t->type) && rs == m.stride) {
        GB_CU(cudaMemcpy(d, t->data, rs * size_t(ne1), cudaMemcpyHostToDevice));
    } else {
        const int64_t slab = std::max<int64_t>(1, int64_t((size_t(64) << 20) / m.stride));
        std::vector<uint8_t> staging(size_t(std::min(slab, ne1)) * m.stride);
        for (int64_t r0 = 0; r0 < ne1; r0 += slab) {
            const int64_t nr = std::min(slab, ne1 - r0);
            for (int64_t r = 0; r < nr; ++r) pack_row(t->type, ne0, t->data + size_t(r0 + r) * rs, staging.data() + size_t(r) * m.stride, m);
            GB_CU(cudaMemcpy(d + size_t(r0) * m.stride, staging.data(), size_t(nr) * m.stride, cudaMemcpyHostToDevice));
        }
    }
    m.data = d;
    return m;
}

Result<const float *> upload_vector(const Model & model, const std::string & name, int64_t n, bool required,
                                    const DeviceAlloc & alloc) {
    const gguf::TensorInfo * t = model.file().find_tensor(name);
    if (!t) {
        if (required) return make_error(ErrorCode::InvalidFile, "CUDA: missing tensor " + name);
        return static_cast<const float *>(nullptr);
    }
    if (t->n_elements() != n) return make_error(ErrorCode::InvalidFile, "CUDA: tensor " + name + " has an unexpected size");
    std::vector<float> v(static_cast<size_t>(n));
    if (!dequantize_row(t->type, t->data, v.data(), n)) return make_error(ErrorCode::Unsupported, "CUDA: cannot convert tensor " + name);
    auto mem = alloc(size_t(n) * sizeof(float));
    if (!mem) return mem.error();
    GB_CU(cudaMemcpy(*mem, v.data(), v.size() * sizeof(float), cudaMemcpyHostToDevice));
    return static_cast<const float *>(*mem);
}

Status upload_rope(const Model & model, int64_t head_dim, const DeviceAlloc & alloc, const float * inv_freq[2]) {
    const HParams & hp = model.hparams();
    const int half = int(head_dim / 2);
    std::vector<float> ff(size_t(half), 1.0f);
    if (const gguf::TensorInfo * t = model.file().find_tensor("rope_freqs.weight")) {
        if (t->n_elements() != half || !dequantize_row(t->type, t->data, ff.data(), half)) {
            return make_error(ErrorCode::InvalidFile, "CUDA: rope_freqs.weight has an unexpected size or type");
        }
    }
    for (int k = 0; k < 2; ++k) {
        const double base = k == 0 ? hp.rope_freq_base : hp.rope_freq_base_swa;
        const double scale = k == 0 ? hp.rope_freq_scale : hp.rope_freq_scale_swa;
        std::vector<float> inv(static_cast<size_t>(half));
        for (int i = 0; i < half; ++i) inv[i] = float(scale * std::pow(base, -2.0 * i / double(head_dim)) / ff[i]);
        auto mem = alloc(inv.size() * sizeof(float));
        if (!mem) return mem.error();
        GB_CU(cudaMemcpy(*mem, inv.data(), inv.size() * sizeof(float), cudaMemcpyHostToDevice));
        inv_freq[k] = static_cast<const float *>(*mem);
    }
    return {};
}

}  // namespace gb::cuda
