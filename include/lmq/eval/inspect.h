// What `lmq inspect` reports: parameters, dtypes, the seeds' memory table (bytes = bits/8 ×
// params at each precision, for the whole model and per tensor group), and per-tensor value
// statistics that show where the outliers are.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "lmq/model/model.h"

namespace lmq {

struct TensorStats {
  std::string name, group, format;
  std::vector<int64_t> shape;
  uint64_t params = 0, bytes = 0;
  double min = 0, max = 0, absmax = 0, mean = 0, std = 0;
  double outlier_share = 0;  // share of values with |x − mean| > 6·std
};

// The precisions of the memory table and their bits.
inline const std::vector<std::pair<std::string, unsigned>>& memory_precisions() {
  static const std::vector<std::pair<std::string, unsigned>> p = {
      {"fp32", 32}, {"fp16", 16}, {"bf16", 16}, {"int8", 8}, {"int4", 4}, {"int2", 2}};
  return p;
}

struct InspectReport {
  uint64_t params = 0;
  std::map<std::string, uint64_t> group_params;  // embeddings, attention, mlp, norms, lm_head
  std::map<std::string, int> format_counts;
  std::vector<TensorStats> tensors;
};

// Which group a tensor belongs to, by its (Hugging Face) name.
std::string tensor_group(const std::string& name);
InspectReport inspect_model(const Model& m, bool with_stats = true);

}  // namespace lmq
