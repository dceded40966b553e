#include "worker/weight_manager.h"

#include <malloc.h>
#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "worker/loader/stage_pacer.h"
#include "worker/process_memory.h"

namespace loom {
namespace {

// A shadow set only holds weights: it never runs a step, so it plans no activations.
DecoderOptions NoWorkspace(DecoderOptions options) {
  options.max_tokens = 0;
  options.max_sampled = 0;
  return options;
}

// The nice value of a staging thread: low enough that steps win a contended core.
constexpr int kStageNice = 10;

// A stage runs beside the steps on the same cores: its thread (and the kernel threads it
// starts, which inherit the value) yields the CPU to the step loop whenever both want it. The
// method runs on a thread of its own (Rank::Call), so the priority goes with that thread.
void YieldToSteps() { (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), kStageNice); }

// A weight set is thousands of buffers, the small ones from malloc on whichever gRPC thread ran
// the operation; freed, they stay in that thread's arena. Handing free pages back after every
// operation keeps a rank's memory flat over any number of reloads and swaps.
void ReturnFreedMemory() { malloc_trim(0); }

}  // namespace

WeightManager::WeightManager(Decoder* serving, DecoderOptions shadow_options,
                             Communicator* weight_comm, absl::Mutex* step_mu)
    : serving_(serving),
      shadow_options_(NoWorkspace(shadow_options)),
      weight_comm_(weight_comm),
      step_mu_(step_mu) {}

WeightManager::~WeightManager() {
  absl::MutexLock op(&op_mu_);
  FinishRelease();
}

void WeightManager::FinishRelease() {
  if (releasing_.joinable()) releasing_.join();
}

const char* WeightManager::StateName(State s) {
  switch (s) {
    case State::kStarting:
      return "starting";
    case State::kLoading:
      return "loading";
    case State::kReady:
      return "ready";
    case State::kStaging:
      return "staging";
    case State::kFailed:
      return "failed";
    case State::kAsleep:
      return "asleep";
  }
  return "unknown";
}

WeightSetInfo WeightManager::InfoOf(const LoadConfig& load, uint64_t version) {
  WeightSetInfo info;
  info.version = version;
  info.load_format = load.load_format;
  info.strategy = load.strategy;
  info.dummy = load.load_format == "dummy";
  info.source = info.dummy ? absl::StrCat("dummy(seed=", load.dummy_seed,
                                          ", range=", load.dummy_range, ")")
                           : load.model;
  return info;
}

nlohmann::json WeightManager::ReportOf(const LoadResult& r) {
  const double gbps = r.seconds > 0 ? static_cast<double>(r.bytes_read + r.bytes_received) /
                                          r.seconds / 1e9
                                    : 0.0;
  return {{"tensors", r.tensors},
          {"bytes_read", r.bytes_read},
          {"bytes_received", r.bytes_received},
          {"seconds", r.seconds},
          {"gb_per_s", gbps},
          {"files", r.files}};
}

absl::StatusOr<nlohmann::json> WeightManager::InitialLoad(const LoadConfig& load,
                                                         uint64_t version) {
  absl::MutexLock op(&op_mu_);
  FinishRelease();
  {
    absl::MutexLock lock(&mu_);
    state_ = State::kLoading;
  }
  absl::StatusOr<LoadResult> result;
  {
    absl::StatusOr<std::unique_ptr<WeightLoad>> prepared =
        WeightLoad::Prepare(load, *serving_, *weight_comm_);
    result = prepared.ok() ? (*prepared)->WriteInto(*serving_, &progress_) : prepared.status();
  }
  absl::MutexLock lock(&mu_);
  if (!result.ok()) {
    state_ = State::kFailed;
    error_ = std::string(result.status().message());
    return result.status();
  }
  state_ = State::kReady;
  serving_info_ = InfoOf(load, version);
  nlohmann::json report = ReportOf(*result);
  report["version"] = version;
  return report;
}

absl::StatusOr<nlohmann::json> WeightManager::Stage(const LoadConfig& load, uint64_t version,
                                                   bool release_previous) {
  YieldToSteps();
  absl::MutexLock op(&op_mu_);
  FinishRelease();
  State before;
  // The set whose buffers this stage writes: one it replaces, or none (then a new one).
  std::unique_ptr<Decoder> shadow;
  uint64_t released = 0;
  {
    absl::MutexLock lock(&mu_);
    if (state_ == State::kFailed) {
      return absl::FailedPreconditionError(absl::StrCat("this rank has failed: ", error_));
    }
    LOOM_RETURN_IF_ERROR(CheckAwake("stage_weights"));
    if (previous_ != nullptr && release_previous) {
      released = previous_info_.version;
      shadow = std::move(previous_);
      shadow_.reset();
    } else {
      LOOM_RETURN_IF_ERROR(CheckNoPrevious("stage_weights"));
      shadow = std::move(shadow_);  // a new stage replaces an earlier one
    }
    before = state_;
    state_ = State::kStaging;
    shadow_ready_ = false;
  }
  progress_.bytes_done = 0;
  progress_.tensors_done = 0;
  const int64_t rss_before = ResidentBytes();
  const bool peak_reset = ResetPeakResident();
  const bool reused = shadow != nullptr;
  StagePacer pacer(load.stage_share);
  absl::StatusOr<LoadResult> result;
  {
    absl::StatusOr<std::unique_ptr<Decoder>> created =
        reused ? std::move(shadow) : Decoder::Create(serving_->config(), shadow_options_);
    if (!created.ok()) {
      // Take part in the check's agreement (Prepare's one collective) so no rank waits for us.
      (void)AgreeAcrossRanks(*weight_comm_, created.status(), "load check");
      result = created.status();
    } else {
      shadow = std::move(*created);
      absl::StatusOr<std::unique_ptr<WeightLoad>> prepared =
          WeightLoad::Prepare(load, *serving_, *weight_comm_);
      ScopedStagePacer paced(&pacer);
      result = prepared.ok() ? (*prepared)->WriteInto(*shadow, &progress_) : prepared.status();
    }
  }
  if (!result.ok()) shadow.reset();  // half written: the serving set was never touched
  ReturnFreedMemory();
  absl::MutexLock lock(&mu_);
  state_ = before == State::kStaging ? State::kReady : before;
  if (!result.ok()) return result.status();
  shadow_ = std::move(shadow);
  shadow_ready_ = true;
  shadow_info_ = InfoOf(load, version);
  nlohmann::json report = ReportOf(*result);
  report["staged_version"] = version;
  report["reused_buffers"] = reused;
  report["paced_seconds"] = pacer.slept_seconds();  // asleep, leaving the cores to steps
  if (released != 0) report["released_previous"] = released;
  // What staging cost in memory: at most one more weight set (two while it is committed).
  report["rss_bytes_before"] = rss_before;
  report["peak_rss_bytes"] = peak_reset ? PeakResidentBytes() : -1;
  report["weight_bytes"] = shadow_->WeightBytes();
  return report;
}

absl::StatusOr<Decoder*> WeightManager::BeginPartialStage(uint64_t version,
                                                          const std::string& source) {
  op_mu_.Lock();  // released by FinishPartialStage
  FinishRelease();
  absl::MutexLock lock(&mu_);
  if (state_ == State::kFailed) {
    op_mu_.Unlock();
    return absl::FailedPreconditionError(absl::StrCat("this rank has failed: ", error_));
  }
  if (absl::Status kept = CheckAwake("update_weights_from_distributed"); !kept.ok()) {
    op_mu_.Unlock();
    return kept;
  }
  if (absl::Status kept = CheckNoPrevious("update_weights_from_distributed"); !kept.ok()) {
    op_mu_.Unlock();
    return kept;
  }
  shadow_.reset();
  shadow_ready_ = false;
  absl::StatusOr<std::unique_ptr<Decoder>> created =
      Decoder::Create(serving_->config(), shadow_options_);
  absl::Status copied = created.ok() ? (*created)->CopyWeightsFrom(*serving_) : created.status();
  if (!copied.ok()) {
    op_mu_.Unlock();
    return copied;
  }
  shadow_ = std::move(*created);
  shadow_info_ = serving_info_;
  shadow_info_.version = version;
  shadow_info_.load_format = "distributed";
  shadow_info_.source = source;
  shadow_info_.dummy = false;
  state_ = State::kStaging;
  return shadow_.get();
}

void WeightManager::FinishPartialStage(bool ok) {
  {
    absl::MutexLock lock(&mu_);
    state_ = State::kReady;
    shadow_ready_ = ok;
    if (!ok) shadow_.reset();
  }
  op_mu_.Unlock();
}

absl::StatusOr<nlohmann::json> WeightManager::Commit(uint64_t version, bool keep_previous) {
  absl::MutexLock op(&op_mu_);
  FinishRelease();
  std::unique_ptr<Decoder> set;
  WeightSetInfo info;
  {
    absl::MutexLock lock(&mu_);
    if (!shadow_ready_ || shadow_info_.version != version) {
      return absl::FailedPreconditionError(absl::StrCat(
          "commit of weight version ", version, ": ",
          shadow_ready_ ? absl::StrCat("the staged version is ", shadow_info_.version)
                        : std::string("no weights are staged")));
    }
    set = std::move(shadow_);
    shadow_ready_ = false;
    info = shadow_info_;
  }
  // The switch: the staged buffers become the serving decoder's, between two steps, in
  // constant time; `set` now holds the weights that served until here.
  const auto start = std::chrono::steady_clock::now();
  absl::Status swapped;
  {
    absl::MutexLock step(step_mu_);
    swapped = serving_->SwapWeights(*set);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  absl::MutexLock lock(&mu_);
  if (!swapped.ok()) {
    // Nothing moved (the layouts are checked before any exchange): the set stays staged.
    shadow_ = std::move(set);
    shadow_ready_ = true;
    return swapped;
  }
  const WeightSetInfo replaced = serving_info_;
  serving_info_ = info;
  if (keep_previous) {
    previous_ = std::move(set);
    previous_info_ = replaced;
  } else {
    Release(std::move(set));
  }
  return nlohmann::json{{"version", version},
                        {"switch_seconds", seconds},
                        {"kept_previous", keep_previous ? nlohmann::json(replaced.version)
                                                        : nlohmann::json()}};
}

absl::StatusOr<nlohmann::json> WeightManager::Rollback(uint64_t version) {
  absl::MutexLock op(&op_mu_);
  FinishRelease();
  {
    absl::MutexLock lock(&mu_);
    if (state_ == State::kFailed) {
      return absl::FailedPreconditionError(absl::StrCat("this rank has failed: ", error_));
    }
    if (previous_ == nullptr) {
      return absl::FailedPreconditionError(
          "rollback_weights: no previous weights are kept (commit with \"keep_previous\": true)");
    }
    if (version <= serving_info_.version) {
      return absl::InvalidArgumentError(absl::StrCat(
          "rollback_weights: version ", version, " is not above the serving ",
          serving_info_.version));
    }
  }
  const auto start = std::chrono::steady_clock::now();
  absl::Status swapped;
  {
    absl::MutexLock step(step_mu_);
    swapped = serving_->SwapWeights(*previous_);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  LOOM_RETURN_IF_ERROR(swapped);
  absl::MutexLock lock(&mu_);
  // The set rolled back from is kept in turn: a second rollback rolls forward.
  const WeightSetInfo replaced = serving_info_;
  const uint64_t restored = previous_info_.version;
  serving_info_ = previous_info_;
  serving_info_.version = version;
  previous_info_ = replaced;
  return nlohmann::json{{"version", version},
                        {"restored_version", restored},
                        {"switch_seconds", seconds},
                        {"kept_previous", replaced.version}};
}

absl::StatusOr<nlohmann::json> WeightManager::ReleasePrevious() {
  absl::MutexLock op(&op_mu_);
  FinishRelease();
  absl::MutexLock lock(&mu_);
  if (previous_ == nullptr) {
    return absl::FailedPreconditionError("release_previous_weights: no previous weights are kept");
  }
  const uint64_t version = previous_info_.version;
  const int64_t bytes = previous_->WeightBytes();
  Release(std::move(previous_));
  return nlohmann::json{{"released_version", version}, {"bytes", bytes}};
}

void WeightManager::Release(std::unique_ptr<Decoder> set) {
  release_pending_ = true;
  releasing_ = std::thread([this, set = std::move(set)]() mutable {
    set.reset();
    ReturnFreedMemory();
    release_pending_ = false;
  });
}

absl::Status WeightManager::CheckAwake(const char* what) const {
  if (state_ != State::kAsleep) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat(what, ": this rank is asleep (level ", sleep_level_, "); wake_up first"));
}

absl::Status WeightManager::CheckNoPrevious(const char* what) const {
  if (previous_ == nullptr) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      what, ": the previous weights (version ", previous_info_.version, ", ",
      previous_->WeightBytes(), " bytes) are kept for a rollback and hold the memory a staged "
      "set needs; release_previous_weights first (or stage with \"release_previous\": true)"));
}

absl::StatusOr<nlohmann::json> WeightManager::AbortStaged() {
  absl::MutexLock op(&op_mu_);
  FinishRelease();
  absl::MutexLock lock(&mu_);
  const bool had = shadow_ != nullptr;
  const uint64_t version = shadow_info_.version;
  shadow_.reset();
  shadow_ready_ = false;
  ReturnFreedMemory();
  nlohmann::json j = {{"aborted", had}};
  if (had) j["version"] = version;
  return j;
}

absl::StatusOr<nlohmann::json> WeightManager::ReloadInPlace(const LoadConfig& load,
                                                            uint64_t version) {
  absl::MutexLock op(&op_mu_);
  FinishRelease();
  {
    absl::MutexLock lock(&mu_);
    LOOM_RETURN_IF_ERROR(CheckAwake("reload_weights"));
    if (state_ == State::kFailed) {
      return absl::FailedPreconditionError(absl::StrCat("this rank has failed: ", error_));
    }
  }
  progress_.bytes_done = 0;
  progress_.tensors_done = 0;
  // Check on every rank first: a bad source fails here and the serving set is untouched.
  LOOM_ASSIGN_OR_RETURN(std::unique_ptr<WeightLoad> prepared,
                        WeightLoad::Prepare(load, *serving_, *weight_comm_));
  absl::StatusOr<LoadResult> result;
  {
    absl::MutexLock step(step_mu_);
    {
      absl::MutexLock lock(&mu_);
      state_ = State::kLoading;
    }
    result = prepared->WriteInto(*serving_, &progress_);
  }
  prepared.reset();
  ReturnFreedMemory();
  absl::MutexLock lock(&mu_);
  if (!result.ok()) {
    state_ = State::kFailed;
    error_ = absl::StrCat("in-place reload failed after writing began; weights are mixed: ",
                          result.status().message());
    return absl::DataLossError(error_);
  }
  state_ = State::kReady;
  serving_info_ = InfoOf(load, version);
  nlohmann::json report = ReportOf(*result);
  report["version"] = version;
  return report;
}

absl::StatusOr<nlohmann::json> WeightManager::SaveShardedState(const std::string& dir,
                                                               int64_t max_file_size,
                                                               bool copy_model_files,
                                                               const std::string& model_dir) {
  absl::MutexLock op(&op_mu_);  // no commit or reload rewrites the set while it is saved
  {
    absl::MutexLock lock(&mu_);
    LOOM_RETURN_IF_ERROR(CheckAwake("save_sharded_state"));
  }
  ShardedStateInfo info;
  info.rank = static_cast<int>(weight_comm_->rank());
  info.tp_size = static_cast<int>(weight_comm_->world_size());
  info.max_file_size = max_file_size;
  {
    absl::MutexLock lock(&mu_);
    info.source = serving_info_.source;
    info.weight_version = serving_info_.version;
  }
  std::vector<std::pair<ParameterInfo, Tensor>> parts;
  for (const ParameterInfo& p : serving_->Parameters()) {
    LOOM_ASSIGN_OR_RETURN(Tensor part, serving_->HostPart(p.name));
    parts.emplace_back(p, part);
  }
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<SaveReport> report = loom::SaveShardedState(dir, parts, info);
  absl::Status mine = report.status();
  if (mine.ok() && copy_model_files) mine = CopyNonWeightFiles(model_dir, dir);
  LOOM_RETURN_IF_ERROR(AgreeAcrossRanks(*weight_comm_, mine, "save_sharded_state"));
  return nlohmann::json{
      {"files", report->files},
      {"bytes_written", report->bytes_written},
      {"seconds",
       std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()},
      {"weight_version", info.weight_version}};
}

absl::StatusOr<nlohmann::json> WeightManager::Sleep(int level) {
  absl::MutexLock op(&op_mu_);
  FinishRelease();
  {
    absl::MutexLock lock(&mu_);
    if (state_ != State::kReady) {
      return absl::FailedPreconditionError(
          absl::StrCat("sleep: the weights are ", StateName(state_), ", not ready"));
    }
    if (shadow_ != nullptr || previous_ != nullptr) {
      return absl::FailedPreconditionError(
          "sleep: another weight set is held (abort_staged_weights or release_previous_weights "
          "first)");
    }
  }
  const int64_t bytes = serving_->WeightBytes();
  const bool on_host = serving_->context().device().is_cpu();
  int64_t freed = 0;
  if (level == 2 || !on_host) {
    // Level 1 on a device keeps a host copy to wake from; a host rank's weights already live
    // in host memory, so its level 1 keeps them where they are.
    std::vector<Tensor> copy;
    if (level == 1) {
      for (const ParameterInfo& p : serving_->Parameters()) {
        LOOM_ASSIGN_OR_RETURN(Tensor part, serving_->HostPart(p.name));
        copy.push_back(std::move(part));
      }
    }
    {
      absl::MutexLock step(step_mu_);
      serving_->DropWeights();
    }
    host_copy_ = std::move(copy);
    ReturnFreedMemory();
    freed = bytes;
  }
  absl::MutexLock lock(&mu_);
  state_ = State::kAsleep;
  sleep_level_ = level;
  return nlohmann::json{{"level", level}, {"weight_bytes", bytes}, {"weight_bytes_freed", freed}};
}

absl::StatusOr<nlohmann::json> WeightManager::Wake(const LoadConfig& load, uint64_t version) {
  absl::MutexLock op(&op_mu_);
  FinishRelease();
  int level;
  {
    absl::MutexLock lock(&mu_);
    if (state_ != State::kAsleep) {
      return absl::FailedPreconditionError(
          absl::StrCat("wake_up: the weights are ", StateName(state_), ", not asleep"));
    }
    level = sleep_level_;
  }
  nlohmann::json report = {{"level", level}};
  if (serving_->has_weights() && version != 0) {
    return absl::InvalidArgumentError("wake_up: the weights were kept; there is nothing to reload");
  }
  if (!serving_->has_weights()) {
    if (level == 2 && version == 0) {
      return absl::FailedPreconditionError(
          "wake_up: a level-2 sleep dropped the weights; wake_up {\"reload\": true} loads them "
          "again");
    }
    // A fresh set on the rank's device, from the host copy or the load config, then switched in.
    absl::StatusOr<std::unique_ptr<Decoder>> created =
        Decoder::Create(serving_->config(), shadow_options_);
    absl::Status filled = created.status();
    if (created.ok() && level == 1) {
      StagedUpload staging((*created)->context());
      const std::vector<ParameterInfo>& params = serving_->Parameters();
      for (size_t i = 0; i < params.size() && filled.ok(); ++i) {
        filled = (*created)->WritePart(
            params[i].name, [&](Tensor& host) { return host.CopyFrom(host_copy_[i]); }, &staging);
      }
      if (absl::Status copied = staging.Finish(); filled.ok()) filled = copied;
    } else if (created.ok()) {
      progress_.bytes_done = 0;
      progress_.tensors_done = 0;
      absl::StatusOr<std::unique_ptr<WeightLoad>> prepared =
          WeightLoad::Prepare(load, *serving_, *weight_comm_);
      absl::StatusOr<LoadResult> loaded =
          prepared.ok() ? (*prepared)->WriteInto(**created, &progress_) : prepared.status();
      filled = loaded.status();
      if (loaded.ok()) report["load"] = ReportOf(*loaded);
    }
    if (filled.ok()) {
      absl::MutexLock step(step_mu_);
      filled = serving_->SwapWeights(**created);
    }
    if (!filled.ok()) return filled;  // still asleep, nothing changed
    Release(std::move(*created));     // the weightless buffers it swapped out
    host_copy_.clear();
    ReturnFreedMemory();
  }
  absl::MutexLock lock(&mu_);
  state_ = State::kReady;
  sleep_level_ = 0;
  if (version != 0) {
    serving_info_ = InfoOf(load, version);
    report["version"] = version;
  }
  return report;
}

absl::Status WeightManager::CheckServing(uint64_t version) const {
  absl::MutexLock lock(&mu_);
  if (state_ == State::kFailed) {
    return absl::FailedPreconditionError(absl::StrCat("this rank has failed: ", error_));
  }
  if (state_ == State::kAsleep) {
    return absl::FailedPreconditionError("this rank is asleep (wake_up first)");
  }
  if (version != 0 && version != serving_info_.version) {
    return absl::FailedPreconditionError(
        absl::StrCat("the step is for weight version ", version, " but this rank serves version ",
                     serving_info_.version));
  }
  return absl::OkStatus();
}

uint64_t WeightManager::serving_version() const {
  absl::MutexLock lock(&mu_);
  return serving_info_.version;
}

namespace {
nlohmann::json SetJson(const WeightSetInfo& s) {
  return {{"version", s.version}, {"load_format", s.load_format}, {"source", s.source},
          {"strategy", s.strategy}, {"dummy", s.dummy}};
}
}  // namespace

nlohmann::json WeightManager::Describe() const {
  absl::MutexLock lock(&mu_);
  nlohmann::json j = {
      {"state", StateName(state_)},
      {"serving", SetJson(serving_info_)},
      {"staged", shadow_ready_ ? SetJson(shadow_info_) : nlohmann::json()},
      {"previous", previous_ != nullptr ? SetJson(previous_info_) : nlohmann::json()},
      {"progress",
       {{"tensors_done", progress_.tensors_done.load()},
        {"tensors_total", progress_.tensors_total.load()},
        {"bytes_done", progress_.bytes_done.load()},
        {"bytes_total", progress_.bytes_total.load()}}},
  };
  if (previous_ != nullptr) j["previous"]["bytes"] = previous_->WeightBytes();
  j["releasing"] = release_pending_.load();
  if (state_ == State::kAsleep) j["sleep_level"] = sleep_level_;
  if (!error_.empty()) j["error"] = error_;
  return j;
}

}  // namespace loom
