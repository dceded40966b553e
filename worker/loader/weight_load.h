// WeightLoad: one load of a model's weights on every tensor-parallel rank at once, in two
// phases so that a bad source never leaves a half-written model behind (DESIGN.md §3.5).
//
//   Prepare  every rank opens its source (for the broadcast strategy, rank 0 alone) and checks
//            it against the model's parameters without reading tensor data; then the ranks
//            agree through the communicator. If any rank failed, every rank returns an error and
//            nothing was written: the failing rank its own cause, the others ABORTED naming it.
//   WriteInto  every parameter's part goes into the decoder through Decoder::LoadWeight. With
//            the broadcast strategy rank 0 reads each full tensor and sends every other rank its
//            part of it (Communicator::Scatter; a replicated tensor goes whole to all), so a rank
//            receives what it keeps and no more. The ranks agree once more at the end.
//
// Both phases are collective: every rank calls them, in the same order, on the communicator
// reserved for weight traffic (never the one steps use, so loads run beside generation).
#ifndef LOOM_WORKER_LOADER_WEIGHT_LOAD_H_
#define LOOM_WORKER_LOADER_WEIGHT_LOAD_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/engine_config.h"
#include "worker/comm/communicator.h"
#include "worker/loader/weight_source.h"
#include "worker/model/decoder.h"

namespace loom {

// Read by other threads (describe) while a load runs.
struct LoadProgress {
  std::atomic<int64_t> tensors_done{0};
  std::atomic<int64_t> tensors_total{0};
  std::atomic<int64_t> bytes_done{0};  // bytes this rank has written into the model
  std::atomic<int64_t> bytes_total{0};
};

struct LoadResult {
  int64_t tensors = 0;
  int64_t bytes_read = 0;     // read from files by this rank
  int64_t bytes_received = 0; // received through the communicator (broadcast strategy)
  double seconds = 0;         // Prepare through WriteInto
  std::vector<std::string> files;  // files this rank opened
};

// The ranks' statuses made one: OK when every rank is OK; else this rank's error, or ABORTED
// naming the failing ranks. Collective.
absl::Status AgreeAcrossRanks(Communicator& comm, const absl::Status& mine,
                              const std::string& what);

// Opens what `load` names for this rank: auto (model dir safetensors), dummy, sharded_state.
absl::StatusOr<std::unique_ptr<WeightSource>> OpenWeightSource(const LoadConfig& load, int rank,
                                                               int tp_size);

// Prepare + WriteInto in one call: a whole load of `decoder` (collective over `comm`).
class WeightLoad;
absl::StatusOr<LoadResult> LoadWeights(const LoadConfig& load, Decoder& decoder,
                                       Communicator& comm);

class WeightLoad {
 public:
  static absl::StatusOr<std::unique_ptr<WeightLoad>> Prepare(const LoadConfig& load,
                                                             const Decoder& model,
                                                             Communicator& comm);
  absl::StatusOr<LoadResult> WriteInto(Decoder& decoder, LoadProgress* progress);

 private:
  WeightLoad(const LoadConfig& load, Communicator& comm) : load_(load), comm_(comm) {}
  absl::Status WriteBroadcast(Decoder& decoder, LoadProgress* progress, LoadResult& result);

  LoadConfig load_;
  Communicator& comm_;
  std::unique_ptr<WeightSource> source_;  // null on ranks that only receive
  double prepare_seconds_ = 0;
};

}  // namespace loom

#endif  // LOOM_WORKER_LOADER_WEIGHT_LOAD_H_
