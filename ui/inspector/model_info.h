// The Model panel's data: a ModelInfo summary of a GGUF file (tensor table,
// per-layer and per-type totals, tokenizer), a sampled histogram of a tensor's
// weights, and the error of requantizing a tensor to another type.
#pragma once

#include "snapshot.h"

#include "glassbox/result.h"

#include <memory>
#include <string>
#include <vector>

namespace gb::ui {

// Opens and summarises a GGUF file (the tokenizer is optional: its error is kept).
Result<std::shared_ptr<const ModelInfo>> loadModelInfo(const std::string & path);
std::shared_ptr<const ModelInfo> makeModelInfo(std::shared_ptr<const gguf::File> file);

// "blk.12.attn_q.weight" -> 12; -1 when the name is not in a block.
int layerOfTensor(std::string_view name);

// Rows of a tensor that a sample of at most maxElements uses: evenly spaced,
// always whole rows, at least one row.
std::vector<int64_t> sampledRows(const gguf::TensorInfo & t, size_t maxElements);

struct WeightSample {
    bool ok = false;
    std::string error;
    size_t nSampled = 0;
    size_t nTotal = 0;
    double mean = 0.0, stddev = 0.0, minValue = 0.0, maxValue = 0.0, meanAbs = 0.0;
    Histogram histogram;
};
WeightSample sampleTensorWeights(const gguf::TensorInfo & t, size_t maxElements, int nBins);

// The stored weights (dequantized; the best reference the file holds) are
// quantized to `target` with the round-to-nearest reference quantizer and
// dequantized again; the error is measured against the stored weights.
struct QuantError {
    bool ok = false;
    std::string error;
    TensorType target = TensorType::F32;
    double bitsPerWeight = 0.0;
    size_t n = 0;
    double rmse = 0.0, maxAbs = 0.0, meanAbs = 0.0;
    double refRms = 0.0;   // RMS of the reference weights
    double snrDb = 0.0;    // 10 log10(signal power / error power); +inf when exact
};
QuantError requantizationError(const gguf::TensorInfo & t, TensorType target, size_t maxElements);

// Types a tensor with rows of rowLength can be requantized to.
std::vector<TensorType> requantizeTargets(int64_t rowLength);

}  // namespace gb::ui
