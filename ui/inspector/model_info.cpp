// ModelInfo construction and tensor weight analysis (dequantize / requantize).
#include "model_info.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>

namespace gb::ui {

int layerOfTensor(std::string_view name) {
    constexpr std::string_view prefix = "blk.";
    if (!name.starts_with(prefix)) return -1;
    int layer = 0;
    size_t i = prefix.size();
    if (i >= name.size() || name[i] < '0' || name[i] > '9') return -1;
    for (; i < name.size() && name[i] >= '0' && name[i] <= '9'; ++i) {
        layer = layer * 10 + (name[i] - '0');
        if (layer > 1000000) return -1;
    }
    return (i < name.size() && name[i] == '.') ? layer : -1;
}

std::shared_ptr<const ModelInfo> makeModelInfo(std::shared_ptr<const gguf::File> file) {
    auto info = std::make_shared<ModelInfo>();
    info->file = file;
    if (auto a = file->get_string("general.architecture")) info->architecture = std::string(*a);
    if (auto n = file->get_string("general.name")) info->name = std::string(*n);

    std::map<int, LayerTotal> layers;
    std::map<uint32_t, TypeTotal> types;
    const auto & tensors = file->tensors();
    info->tensors.reserve(tensors.size());
    for (size_t i = 0; i < tensors.size(); ++i) {
        const gguf::TensorInfo & t = tensors[i];
        TensorRow row;
        row.index = i;
        row.layer = layerOfTensor(t.name);
        info->tensors.push_back(row);
        const uint64_t n = uint64_t(t.n_elements());
        LayerTotal & l = layers[row.layer];
        l.layer = row.layer;
        ++l.nTensors;
        l.nParams += n;
        l.nBytes += t.n_bytes;
        TypeTotal & ty = types[uint32_t(t.type)];
        ty.type = t.type;
        ++ty.nTensors;
        ty.nParams += n;
        ty.nBytes += t.n_bytes;
        info->totalParams += n;
        info->totalBytes += t.n_bytes;
    }
    for (auto & [k, l] : layers) info->layers.push_back(l);  // -1 sorts first
    for (auto & [k, t] : types) info->types.push_back(t);
    std::sort(info->types.begin(), info->types.end(),
              [](const TypeTotal & a, const TypeTotal & b) { return a.nBytes > b.nBytes; });

    auto tok = Tokenizer::from_gguf(*file);
    if (tok) info->tokenizer = *tok;
    else info->tokenizerError = tok.error().to_string();
    return info;
}

Result<std::shared_ptr<const ModelInfo>> loadModelInfo(const std::string & path) {
    auto file = gguf::File::open(path);
    if (!file) return file.error();
    return makeModelInfo(std::shared_ptr<const gguf::File>(std::move(*file)));
}

std::vector<int64_t> sampledRows(const gguf::TensorInfo & t, size_t maxElements) {
    const int64_t row_len = std::max<int64_t>(t.ne[0], 1);
    const int64_t n_rows = std::max<int64_t>(t.n_elements() / row_len, 1);
    const int64_t want = std::clamp<int64_t>(int64_t(maxElements) / row_len, 1, n_rows);
    std::vector<int64_t> rows;
    rows.reserve(size_t(want));
    for (int64_t i = 0; i < want; ++i) rows.push_back(i * n_rows / want);  // evenly spaced, distinct
    return rows;
}

// Dequantizes the sampled rows; empty with an error message when impossible.
static std::vector<float> dequantizeRows(const gguf::TensorInfo & t, const std::vector<int64_t> & rows,
                                         std::string * error) {
    const TypeTraits * tr = type_traits(uint32_t(t.type));
    if (!tr || !tr->computable || t.data == nullptr) {
        *error = std::string("cannot dequantize type ") + (tr ? tr->name : "?");
        return {};
    }
    const int64_t row_len = t.ne[0];
    if (row_len <= 0 || row_len % tr->block_size != 0) {
        *error = "row length is not a multiple of the block size";
        return {};
    }
    const size_t row_bytes = row_size(t.type, row_len);
    std::vector<float> out(rows.size() * size_t(row_len));
    for (size_t i = 0; i < rows.size(); ++i) {
        const uint8_t * src = t.data + size_t(rows[i]) * row_bytes;
        if (!dequantize_row(t.type, src, out.data() + i * size_t(row_len), row_len)) {
            *error = "dequantize_row failed";
            return {};
        }
    }
    return out;
}

WeightSample sampleTensorWeights(const gguf::TensorInfo & t, size_t maxElements, int nBins) {
    WeightSample s;
    s.nTotal = size_t(t.n_elements());
    const std::vector<float> w = dequantizeRows(t, sampledRows(t, maxElements), &s.error);
    if (w.empty()) return s;
    std::vector<double> v(w.begin(), w.end());
    double sum = 0.0, sum_abs = 0.0;
    s.minValue = s.maxValue = v[0];
    for (double x : v) {
        sum += x;
        sum_abs += std::fabs(x);
        s.minValue = std::min(s.minValue, x);
        s.maxValue = std::max(s.maxValue, x);
    }
    const double n = double(v.size());
    s.mean = sum / n;
    double var = 0.0;
    for (double x : v) var += (x - s.mean) * (x - s.mean);
    s.stddev = std::sqrt(var / n);
    s.meanAbs = sum_abs / n;
    s.nSampled = v.size();
    s.histogram = makeHistogram(v, nBins);
    s.ok = true;
    return s;
}

std::vector<TensorType> requantizeTargets(int64_t rowLength) {
    static const TensorType kCandidates[] = {
        TensorType::F16, TensorType::BF16, TensorType::Q8_0, TensorType::Q6_K, TensorType::Q5_K,
        TensorType::Q5_0, TensorType::Q4_K, TensorType::Q4_0, TensorType::Q3_K, TensorType::Q2_K,
    };
    std::vector<TensorType> out;
    for (TensorType t : kCandidates) {
        const TypeTraits * tr = type_traits(uint32_t(t));
        if (tr && tr->computable && rowLength > 0 && rowLength % tr->block_size == 0) out.push_back(t);
    }
    return out;
}

QuantError requantizationError(const gguf::TensorInfo & t, TensorType target, size_t maxElements) {
    QuantError e;
    e.target = target;
    const TypeTraits * tr = type_traits(uint32_t(target));
    if (!tr || !tr->computable) {
        e.error = "target type is not supported";
        return e;
    }
    const int64_t row_len = t.ne[0];
    if (row_len <= 0 || row_len % tr->block_size != 0) {
        e.error = "row length is not a multiple of the target's block size";
        return e;
    }
    e.bitsPerWeight = 8.0 * double(tr->type_size) / double(tr->block_size);
    const std::vector<float> ref = dequantizeRows(t, sampledRows(t, maxElements), &e.error);
    if (ref.empty()) return e;

    std::vector<uint8_t> q(row_size(target, row_len));
    std::vector<float> back(static_cast<size_t>(row_len));
    double err2 = 0.0, sig2 = 0.0, err_abs = 0.0;
    for (size_t r = 0; r < ref.size() / size_t(row_len); ++r) {
        const float * x = ref.data() + r * size_t(row_len);
        if (!quantize_row_ref(target, x, q.data(), row_len) || !dequantize_row(target, q.data(), back.data(), row_len)) {
            e.error = "quantize_row_ref failed";
            return e;
        }
        for (int64_t i = 0; i < row_len; ++i) {
            const double d = double(back[size_t(i)]) - double(x[i]);
            err2 += d * d;
            err_abs += std::fabs(d);
            sig2 += double(x[i]) * double(x[i]);
            e.maxAbs = std::max(e.maxAbs, std::fabs(d));
        }
    }
    e.n = ref.size();
    e.rmse = std::sqrt(err2 / double(e.n));
    e.meanAbs = err_abs / double(e.n);
    e.refRms = std::sqrt(sig2 / double(e.n));
    e.snrDb = err2 > 0 ? 10.0 * std::log10(sig2 / err2) : std::numeric_limits<double>::infinity();
    e.ok = true;
    return e;
}

}  // namespace gb::ui
