#include "worker/loader/weight_load.h"

#include <chrono>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"
#include "worker/loader/stage_pacer.h"

namespace loom {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// Every rank's region of every parameter: [world, params, 3] of (split_dim, start, length).
// Rank 0 cuts each rank's part by it. The regions come from the ranks' own decoders rather than
// being recomputed, so a part always has the shape its receiver expects. The table is the same
// on every rank, so a layout that differs between ranks stops them all, before any write.
absl::StatusOr<Tensor> GatherRegions(Communicator& comm, const std::vector<ParameterInfo>& params) {
  const auto n = static_cast<int64_t>(params.size());
  Tensor mine = Tensor::Empty(DType::kI64, {n, 3});
  for (int64_t i = 0; i < n; ++i) {
    int64_t* row = mine.data<int64_t>() + 3 * i;
    row[0] = params[i].split_dim;
    row[1] = params[i].start;
    row[2] = params[i].length;
  }
  Tensor all = Tensor::Empty(DType::kI64, {comm.world_size(), n, 3});
  LOOM_RETURN_IF_ERROR(comm.AllGather(mine, all));
  for (int64_t r = 0; r < comm.world_size(); ++r) {
    for (int64_t i = 0; i < n; ++i) {
      if (all.data<int64_t>()[3 * (r * n + i)] != params[i].split_dim) {
        return absl::InternalError(absl::StrCat("broadcast load: rank ", r, " splits ",
                                                params[i].name, " differently from rank ",
                                                comm.rank()));
      }
    }
  }
  return all;
}

// Parameter i's part of every rank, cut from `full` by `regions` (GatherRegions), contiguous.
absl::StatusOr<std::vector<Tensor>> CutRegions(const Tensor& full, const Tensor& regions,
                                               int64_t i) {
  const int64_t world = regions.size(0), n = regions.size(1);
  std::vector<Tensor> parts;
  for (int64_t r = 0; r < world; ++r) {
    const int64_t* row = regions.data<int64_t>() + 3 * (r * n + i);
    LOOM_ASSIGN_OR_RETURN(Tensor part, full.Slice(row[0], row[1], row[2]));
    parts.push_back(part.is_contiguous() ? part : part.Clone());
  }
  return parts;
}

}  // namespace

absl::Status AgreeAcrossRanks(Communicator& comm, const absl::Status& mine,
                              const std::string& what) {
  const int64_t world = comm.world_size();
  Tensor code = Tensor::Empty(DType::kI32, {1});
  code.data<int32_t>()[0] = static_cast<int32_t>(mine.code());
  Tensor all = Tensor::Empty(DType::kI32, {world, 1});
  absl::Status gathered = comm.AllGather(code, all);
  if (!gathered.ok()) {
    return absl::Status(gathered.code(),
                        absl::StrCat(what, ": the ranks could not agree: ", gathered.message()));
  }
  if (!mine.ok()) return mine;
  std::vector<int64_t> failed;
  for (int64_t r = 0; r < world; ++r) {
    if (all.data<int32_t>()[r] != 0) failed.push_back(r);
  }
  if (failed.empty()) return absl::OkStatus();
  return absl::AbortedError(absl::StrCat(what, " stopped: rank", failed.size() > 1 ? "s " : " ",
                                         absl::StrJoin(failed, ", "), " failed"));
}

absl::StatusOr<std::unique_ptr<WeightSource>> OpenWeightSource(const LoadConfig& load, int rank,
                                                               int tp_size) {
  if (load.load_format == "auto") return OpenSafetensorsSource(load.model);
  if (load.load_format == "dummy") return MakeDummySource(load.dummy_seed, load.dummy_range);
  if (load.load_format == "sharded_state") {
    return OpenShardedStateSource(load.model, rank, tp_size);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown load format \"", load.load_format, "\" (known: auto, dummy, sharded_state)"));
}

absl::StatusOr<LoadResult> LoadWeights(const LoadConfig& load, Decoder& decoder,
                                       Communicator& comm) {
  LOOM_ASSIGN_OR_RETURN(std::unique_ptr<WeightLoad> prepared,
                        WeightLoad::Prepare(load, decoder, comm));
  return prepared->WriteInto(decoder, nullptr);
}

absl::StatusOr<std::unique_ptr<WeightLoad>> WeightLoad::Prepare(const LoadConfig& load,
                                                                const Decoder& model,
                                                                Communicator& comm) {
  const auto start = std::chrono::steady_clock::now();
  std::unique_ptr<WeightLoad> w(new WeightLoad(load, comm));
  const bool broadcast = load.strategy == "broadcast";
  absl::Status mine;
  if (!broadcast || comm.rank() == 0) {
    const int tp = static_cast<int>(comm.world_size()), rank = static_cast<int>(comm.rank());
    // A broadcast load reads the whole model on rank 0, as a TP=1 rank would.
    absl::StatusOr<std::unique_ptr<WeightSource>> source =
        broadcast ? OpenWeightSource(load, 0, 1) : OpenWeightSource(load, rank, tp);
    if (source.ok()) {
      w->source_ = std::move(*source);
      std::vector<ParameterInfo> params = model.Parameters();
      if (broadcast) {
        for (ParameterInfo& p : params) p = p.Whole();
      }
      mine = w->source_->Check(params, model.config().tie_word_embeddings);
    } else {
      mine = source.status();
    }
  }
  LOOM_RETURN_IF_ERROR(AgreeAcrossRanks(comm, mine, "load check"));
  w->prepare_seconds_ = SecondsSince(start);
  return w;
}

absl::StatusOr<LoadResult> WeightLoad::WriteInto(Decoder& decoder, LoadProgress* progress) {
  const auto start = std::chrono::steady_clock::now();
  LoadResult result;
  const std::vector<ParameterInfo>& params = decoder.Parameters();
  LoadProgress local;
  if (progress == nullptr) progress = &local;
  progress->tensors_total = static_cast<int64_t>(params.size());
  int64_t total = 0;
  for (const ParameterInfo& p : params) {
    int64_t n = 1;
    for (int64_t d : p.local_shape()) n *= d;
    total += n * static_cast<int64_t>(DTypeSize(decoder.Part(p.name)->dtype()));
  }
  progress->bytes_total = total;
  absl::Status mine;
  if (load_.strategy == "broadcast") {
    mine = WriteBroadcast(decoder, progress, result);
  } else {
    // On a device, reads of the next part overlap the copy of the last (staged_upload.h).
    StagedUpload staging(decoder.context());
    for (const ParameterInfo& p : params) {
      // Straight into the model's buffer, or its host staging on a device (the checks of
      // Prepare already passed).
      if (source_->generates()) {
        absl::StatusOr<Tensor> part = decoder.Part(p.name);
        mine = part.ok() ? source_->GenerateInto(decoder.context(), p, *part) : part.status();
      } else {
        mine = decoder.WritePart(
            p.name, [&](Tensor& host) { return source_->ReadInto(p, host); }, &staging);
      }
      if (!mine.ok()) break;
      if (StagePacer* pacer = ActivePacer(); pacer != nullptr) pacer->Pace();
      ++result.tensors;
      progress->tensors_done = result.tensors;
      progress->bytes_done += static_cast<int64_t>(decoder.Part(p.name)->nbytes());
    }
    if (absl::Status copied = staging.Finish(); mine.ok()) mine = copied;
  }
  if (source_) {
    result.bytes_read = source_->bytes_read();
    result.files = source_->files_opened();
  }
  LOOM_RETURN_IF_ERROR(AgreeAcrossRanks(comm_, mine, "load"));
  result.seconds = prepare_seconds_ + SecondsSince(start);
  return result;
}

absl::Status WeightLoad::WriteBroadcast(Decoder& decoder, LoadProgress* progress,
                                        LoadResult& result) {
  // Per tensor: rank 0 sends a header [ok, dtype] and then, when ok, in the file's dtype, a
  // replicated tensor whole to every rank, or a split one cut so that each rank receives only its
  // own region. A read failure on rank 0 travels in the header, so every rank stops together.
  const std::vector<ParameterInfo>& params = decoder.Parameters();
  LOOM_ASSIGN_OR_RETURN(const Tensor regions, GatherRegions(comm_, params));
  absl::Status mine;
  for (size_t i = 0; i < params.size(); ++i) {
    const ParameterInfo& p = params[i];
    Tensor header = Tensor::Empty(DType::kI64, {2});
    Tensor full;
    if (comm_.rank() == 0) {
      absl::StatusOr<Tensor> read = source_->Read(p.Whole());
      if (read.ok()) {
        full = read->is_contiguous() ? *read : read->Clone();
        header.data<int64_t>()[0] = 1;
        header.data<int64_t>()[1] = static_cast<int64_t>(full.dtype());
      } else {
        mine = read.status();
      }
    }
    LOOM_RETURN_IF_ERROR(comm_.Broadcast(header, 0));
    if (header.data<int64_t>()[0] != 1) {
      return mine.ok() ? absl::AbortedError(absl::StrCat("load stopped: rank 0 could not read ",
                                                         p.name))
                       : mine;
    }
    const auto dtype = static_cast<DType>(header.data<int64_t>()[1]);
    Tensor part;
    if (p.split_dim < 0) {
      part = comm_.rank() == 0 ? full : Tensor::Empty(dtype, p.shape);
      LOOM_RETURN_IF_ERROR(comm_.Broadcast(part, 0));
    } else {
      std::vector<Tensor> parts;
      if (comm_.rank() == 0) {
        LOOM_ASSIGN_OR_RETURN(parts, CutRegions(full, regions, static_cast<int64_t>(i)));
        part = parts[0];
      } else {
        part = Tensor::Empty(dtype, p.local_shape());
      }
      LOOM_RETURN_IF_ERROR(comm_.Scatter(parts, part, 0));
    }
    if (comm_.rank() != 0) result.bytes_received += static_cast<int64_t>(part.nbytes());
    LOOM_RETURN_IF_ERROR(decoder.LoadWeight(p.name, part));
    ++result.tensors;
    progress->tensors_done = result.tensors;
    progress->bytes_done += static_cast<int64_t>(decoder.Part(p.name)->nbytes());
  }
  return absl::OkStatus();
}

}  // namespace loom
