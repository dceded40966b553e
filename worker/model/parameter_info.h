// ParameterInfo: one HF-named parameter of the model and the part of it this tensor-parallel
// rank holds. Every parameter is either held whole or cut along one dimension into a contiguous
// range, so a rank's part is always one rectangle of the full tensor: that is what loaders read,
// what sharded state stores, and what resharding reassembles.
#ifndef LOOM_WORKER_MODEL_PARAMETER_INFO_H_
#define LOOM_WORKER_MODEL_PARAMETER_INFO_H_

#include <cstdint>
#include <string>
#include <vector>

namespace loom {

struct ParameterInfo {
  std::string name;            // HF name
  std::vector<int64_t> shape;  // full, unsharded
  int split_dim = -1;          // -1: this rank holds the whole tensor
  int64_t start = 0;           // this rank's range [start, start + length) along split_dim
  int64_t length = 0;

  bool is_whole() const { return split_dim < 0 || (start == 0 && length == shape[split_dim]); }
  // The shape of this rank's part.
  std::vector<int64_t> local_shape() const {
    std::vector<int64_t> s = shape;
    if (split_dim >= 0) s[split_dim] = length;
    return s;
  }
  // The same parameter held whole (what rank 0 reads for a broadcast load).
  ParameterInfo Whole() const {
    ParameterInfo w = *this;
    w.split_dim = -1;
    w.start = 0;
    w.length = 0;
    return w;
  }
};

}  // namespace loom

#endif  // LOOM_WORKER_MODEL_PARAMETER_INFO_H_
