#include "worker/comm/shm_communicator.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <exception>
#include <fstream>
#include <random>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "gloo/rendezvous/prefix_store.h"
#include "worker/comm/collective_args.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace loom {
namespace {

constexpr uint64_t kMagic = 0x314d48534d4f4f4cull;  // "LOOMSHM1"
constexpr int64_t kMaxRanks = 64;
constexpr size_t kHeaderBytes = 64 * 1024;
// How long a waiting rank spins, then yields, before it sleeps on the futex. Spinning catches
// a peer that arrives within microseconds (ranks on cores of their own); yielding lets a peer
// that shares this core run; sleeping stops a rank from burning a core on a slow peer.
constexpr auto kSpinFor = std::chrono::microseconds(50);
constexpr auto kYieldFor = std::chrono::microseconds(500);
constexpr auto kSleepSlice = std::chrono::milliseconds(5);
// The environment variable that makes every rank of a group use Gloo instead.
constexpr char kCollectivesEnv[] = "LOOM_CPU_COLLECTIVES";

using Clock = std::chrono::steady_clock;

struct alignas(64) RankState {
  std::atomic<uint32_t> arrived;   // rounds this rank has entered
  std::atomic<uint32_t> sleepers;  // peers asleep on `arrived`
  int32_t pid;
  uint64_t pid_namespace;  // inode of /proc/self/ns/pid: pids compare only within one
};

void CpuRelax() {
#if defined(__x86_64__)
  _mm_pause();
#endif
}

void FutexWait(std::atomic<uint32_t>* word, uint32_t value, std::chrono::nanoseconds timeout) {
  timespec ts{static_cast<time_t>(timeout.count() / 1000000000),
              static_cast<long>(timeout.count() % 1000000000)};
  // Not FUTEX_PRIVATE_FLAG: the word is shared with other processes.
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT, value, &ts, nullptr, 0);
}

void FutexWakeAll(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

uint64_t PidNamespace() {
  struct stat st;
  return stat("/proc/self/ns/pid", &st) == 0 ? static_cast<uint64_t>(st.st_ino) : 0;
}

// This machine's identity: the kernel's boot id, the same in every process and namespace of
// one running kernel.
std::string BootId() {
  std::ifstream in("/proc/sys/kernel/random/boot_id");
  std::string id;
  std::getline(in, id);
  return std::string(absl::StripAsciiWhitespace(id));
}

std::vector<char> Bytes(const std::string& s) { return {s.begin(), s.end()}; }

// Whether process `pid` (of this pid namespace) has ended: gone, or a zombie its parent has not
// reaped yet.
bool Exited(int32_t pid) {
  if (kill(pid, 0) != 0) return errno == ESRCH;
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string line;
  std::getline(stat, line);
  const size_t paren = line.rfind(')');  // the command name may hold spaces and parentheses
  return paren != std::string::npos && paren + 2 < line.size() &&
         (line[paren + 2] == 'Z' || line[paren + 2] == 'X');
}

bool Reached(uint32_t arrived, uint32_t round) {
  return static_cast<int32_t>(arrived - round) >= 0;  // wraps after 2^31 rounds ahead
}

}  // namespace

struct ShmCommunicator::Segment {
  uint64_t magic;
  int64_t world_size;
  int64_t slot_bytes;
  RankState ranks[kMaxRanks];
};
static_assert(sizeof(ShmCommunicator::Segment) <= kHeaderBytes);

namespace {

size_t SegmentBytes(int64_t world) {
  return kHeaderBytes + 2 * static_cast<size_t>(world) * ShmCommunicator::kSlotBytes;
}

// Maps segment `name` (created by rank 0 when `create`); nullptr on any failure.
void* MapSegment(const std::string& name, int64_t world, bool create) {
  const size_t bytes = SegmentBytes(world);
  const int fd = shm_open(name.c_str(), create ? O_RDWR | O_CREAT | O_EXCL : O_RDWR, 0600);
  if (fd < 0) return nullptr;
  struct stat st;
  // Space reserved up front: tmpfs pages are only allocated when first written, and a /dev/shm
  // too small for them would kill the process with SIGBUS then, instead of failing here.
  const bool sized = create ? posix_fallocate(fd, 0, static_cast<off_t>(bytes)) == 0
                            : fstat(fd, &st) == 0 && static_cast<size_t>(st.st_size) == bytes;
  void* base = sized ? mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
  close(fd);
  if (base == MAP_FAILED) {
    if (create) shm_unlink(name.c_str());
    return nullptr;
  }
  auto* segment = static_cast<ShmCommunicator::Segment*>(base);
  if (create) {
    segment->world_size = world;
    segment->slot_bytes = ShmCommunicator::kSlotBytes;
    std::atomic_ref<uint64_t>(segment->magic).store(kMagic, std::memory_order_release);
  } else if (std::atomic_ref<uint64_t>(segment->magic).load(std::memory_order_acquire) != kMagic ||
             segment->world_size != world || segment->slot_bytes != ShmCommunicator::kSlotBytes) {
    munmap(base, bytes);
    return nullptr;
  }
  return base;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ShmCommunicator>> ShmCommunicator::Create(
    const ShmOptions& options) {
  const int64_t rank = options.rank, world = options.world_size;
  if (world < 1 || world > kMaxRanks || rank < 0 || rank >= world) {
    return absl::InvalidArgumentError(
        absl::StrCat("shared-memory communicator: bad rank ", rank, " of ", world));
  }
  if (options.store == nullptr) {
    return absl::InvalidArgumentError("shared-memory communicator: no rendezvous store");
  }
  if (options.timeout.count() <= 0) {
    return absl::InvalidArgumentError("shared-memory communicator: the timeout must be positive");
  }
  const char* forced = std::getenv(kCollectivesEnv);
  const bool gloo_only = forced != nullptr && std::string(forced) == "gloo";
  void* base = nullptr;
  std::string name;  // the segment's, once rank 0 has created it
  try {
    gloo::rendezvous::PrefixStore store(options.prefix + "/shm", *options.store);
    auto keys = [world](const char* what) {
      std::vector<std::string> k;
      for (int64_t r = 0; r < world; ++r) k.push_back(absl::StrCat(what, "/", r));
      return k;
    };
    // 1. The same machine? A rank told to use Gloo announces a host nobody else has.
    const std::string host =
        gloo_only ? absl::StrCat("gloo-only rank ", rank) : absl::StrCat("boot ", BootId());
    store.set(absl::StrCat("host/", rank), Bytes(host));
    store.wait(keys("host"), options.timeout);
    bool same = true;
    for (const std::string& key : keys("host")) same = same && store.get(key) == Bytes(host);
    if (!same || BootId().empty()) return std::unique_ptr<ShmCommunicator>();
    // 2. Rank 0 creates the segment; everyone maps it and says whether that worked.
    if (rank == 0) {
      std::random_device random;
      name = absl::StrCat("/loom-", getpid(), "-", random(), random());
      base = MapSegment(name, world, /*create=*/true);
      if (base == nullptr) name.clear();
      store.set("name", Bytes(name));
    } else {
      store.wait({"name"}, options.timeout);
      const std::vector<char> got = store.get("name");
      name.assign(got.begin(), got.end());
      if (!name.empty()) base = MapSegment(name, world, /*create=*/false);
    }
    if (base != nullptr) {
      RankState& me = static_cast<Segment*>(base)->ranks[rank];
      me.pid = static_cast<int32_t>(getpid());
      me.pid_namespace = PidNamespace();
    }
    store.set(absl::StrCat("mapped/", rank), Bytes(base != nullptr ? "1" : "0"));
    store.wait(keys("mapped"), options.timeout);
    bool all = true;
    for (const std::string& key : keys("mapped")) all = all && store.get(key) == Bytes("1");
    // Everyone has mapped it or given up: the name is no longer needed.
    if (rank == 0 && !name.empty()) shm_unlink(name.c_str());
    if (!all) {
      if (base != nullptr) munmap(base, SegmentBytes(world));
      return std::unique_ptr<ShmCommunicator>();
    }
  } catch (const std::exception& e) {
    if (base != nullptr) munmap(base, SegmentBytes(world));
    if (rank == 0 && !name.empty()) shm_unlink(name.c_str());
    return absl::UnavailableError(absl::StrCat("shared-memory rendezvous failed on rank ", rank,
                                               " of ", world, " (prefix '", options.prefix,
                                               "'): ", e.what()));
  }
  std::unique_ptr<ShmCommunicator> comm(
      new ShmCommunicator(rank, world, options.timeout, base, SegmentBytes(world)));
  // Fault in this rank's slots now rather than in its first collectives.
  std::memset(static_cast<uint8_t*>(base) + kHeaderBytes + rank * 2 * kSlotBytes, 0,
              2 * kSlotBytes);
  return comm;
}

ShmCommunicator::ShmCommunicator(int64_t rank, int64_t world_size,
                                 std::chrono::milliseconds timeout, void* base, size_t bytes)
    : rank_(rank),
      world_size_(world_size),
      timeout_(timeout),
      segment_(static_cast<Segment*>(base)),
      bytes_(bytes) {}

ShmCommunicator::~ShmCommunicator() { munmap(segment_, bytes_); }

uint8_t* ShmCommunicator::Slot(uint32_t round, int64_t rank) const {
  return reinterpret_cast<uint8_t*>(segment_) + kHeaderBytes +
         (rank * 2 + round % 2) * kSlotBytes;
}

absl::Status ShmCommunicator::CheckUsable(const char* op) const {
  if (broken_.ok()) return absl::OkStatus();
  return absl::FailedPreconditionError(
      absl::StrCat(op, " on rank ", rank_, ": communicator unusable after an earlier failure: ",
                   broken_.message()));
}

absl::Status ShmCommunicator::Exchange(const char* op) {
  const uint32_t round = round_ + 1;
  RankState& me = segment_->ranks[rank_];
  me.arrived.store(round, std::memory_order_seq_cst);
  if (me.sleepers.load(std::memory_order_seq_cst) > 0) FutexWakeAll(&me.arrived);
  const auto start = Clock::now();
  const uint64_t my_namespace = me.pid_namespace;
  for (int64_t p = 0; p < world_size_; ++p) {
    if (p == rank_) continue;
    RankState& peer = segment_->ranks[p];
    auto arrived = [&] { return Reached(peer.arrived.load(std::memory_order_acquire), round); };
    if (arrived()) continue;
    while (!arrived() && Clock::now() - start < kSpinFor) {
      for (int i = 0; i < 64 && !arrived(); ++i) CpuRelax();
    }
    while (!arrived() && Clock::now() - start < kSpinFor + kYieldFor) sched_yield();
    while (!arrived()) {
      peer.sleepers.fetch_add(1, std::memory_order_seq_cst);
      const uint32_t seen = peer.arrived.load(std::memory_order_seq_cst);
      if (!Reached(seen, round)) FutexWait(&peer.arrived, seen, kSleepSlice);
      peer.sleepers.fetch_sub(1, std::memory_order_seq_cst);
      if (arrived()) break;
      std::string why;
      if (peer.pid_namespace == my_namespace && Exited(peer.pid)) {
        why = absl::StrCat("rank ", p, " (pid ", peer.pid, ") has exited");
      } else if (Clock::now() - start > timeout_) {
        why = absl::StrCat("rank ", p, " did not arrive within ", timeout_.count(), " ms");
      }
      if (!why.empty()) {
        broken_ = absl::UnavailableError(absl::StrCat(op, " failed on rank ", rank_, " of ",
                                                      world_size_, " (shared memory): ", why));
        return broken_;
      }
    }
  }
  round_ = round;
  return absl::OkStatus();
}

absl::Status ShmCommunicator::AllReduceSum(Tensor& tensor) {
  LOOM_RETURN_IF_ERROR(CheckF32("AllReduceSum", "tensor", tensor));
  if (world_size_ == 1 || tensor.numel() == 0) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  LOOM_RETURN_IF_ERROR(CheckUsable("AllReduceSum"));
  float* data = tensor.data<float>();
  const int64_t n = tensor.numel(), chunk = kSlotBytes / static_cast<int64_t>(sizeof(float));
  for (int64_t off = 0; off < n; off += chunk) {
    const int64_t count = std::min(chunk, n - off);
    const uint32_t round = NextRound();
    std::memcpy(Slot(round, rank_), data + off, count * sizeof(float));
    LOOM_RETURN_IF_ERROR(Exchange("AllReduceSum"));
    // In rank order from the same bytes on every rank: bit-identical sums.
    float* dst = data + off;
    std::memcpy(dst, Slot(round, 0), count * sizeof(float));
    for (int64_t r = 1; r < world_size_; ++r) {
      const auto* src = reinterpret_cast<const float*>(Slot(round, r));
      for (int64_t i = 0; i < count; ++i) dst[i] += src[i];
    }
  }
  return absl::OkStatus();
}

absl::Status ShmCommunicator::AllGather(const Tensor& in, Tensor& out) {
  LOOM_RETURN_IF_ERROR(CheckAllGatherArgs(in, out, world_size_));
  const int64_t bytes = static_cast<int64_t>(in.nbytes());
  if (bytes == 0) return absl::OkStatus();
  const auto* src = static_cast<const uint8_t*>(in.raw_data());
  auto* dst = static_cast<uint8_t*>(out.raw_data());
  if (world_size_ == 1) {
    std::memcpy(dst, src, bytes);
    return absl::OkStatus();
  }
  absl::MutexLock lock(&mu_);
  LOOM_RETURN_IF_ERROR(CheckUsable("AllGather"));
  for (int64_t off = 0; off < bytes; off += kSlotBytes) {
    const int64_t count = std::min(kSlotBytes, bytes - off);
    const uint32_t round = NextRound();
    std::memcpy(Slot(round, rank_), src + off, count);
    LOOM_RETURN_IF_ERROR(Exchange("AllGather"));
    for (int64_t r = 0; r < world_size_; ++r) {
      std::memcpy(dst + r * bytes + off, Slot(round, r), count);
    }
  }
  return absl::OkStatus();
}

absl::Status ShmCommunicator::AllGatherLastDim(const Tensor& in, Tensor& out) {
  return AllGatherLastDimByRows(*this, in, out);
}

absl::Status ShmCommunicator::Broadcast(Tensor& tensor, int64_t root) {
  LOOM_RETURN_IF_ERROR(CheckContiguous("Broadcast", "tensor", tensor));
  if (root < 0 || root >= world_size_) {
    return absl::InvalidArgumentError(
        absl::StrCat("Broadcast: root ", root, " outside [0, ", world_size_, ")"));
  }
  const int64_t bytes = static_cast<int64_t>(tensor.nbytes());
  if (world_size_ == 1 || bytes == 0) return absl::OkStatus();
  auto* data = static_cast<uint8_t*>(tensor.raw_data());
  absl::MutexLock lock(&mu_);
  LOOM_RETURN_IF_ERROR(CheckUsable("Broadcast"));
  for (int64_t off = 0; off < bytes; off += kSlotBytes) {
    const int64_t count = std::min(kSlotBytes, bytes - off);
    uint8_t* slot = Slot(NextRound(), root);
    if (rank_ == root) std::memcpy(slot, data + off, count);
    LOOM_RETURN_IF_ERROR(Exchange("Broadcast"));
    if (rank_ != root) std::memcpy(data + off, slot, count);
  }
  return absl::OkStatus();
}

absl::Status ShmCommunicator::Scatter(absl::Span<const Tensor> parts, Tensor& out, int64_t root) {
  LOOM_RETURN_IF_ERROR(CheckScatterArgs(parts, out, root, rank_, world_size_));
  if (rank_ == root && out.raw_data() != parts[root].raw_data() && out.nbytes() > 0) {
    std::memcpy(out.raw_data(), parts[root].raw_data(), out.nbytes());
  }
  if (world_size_ == 1) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  LOOM_RETURN_IF_ERROR(CheckUsable("Scatter"));
  // First round: every part's size, so each rank knows how many rounds follow and whether its
  // `out` fits.
  std::vector<int64_t> sizes(world_size_);
  uint8_t* slot = Slot(NextRound(), root);
  if (rank_ == root) {
    for (int64_t r = 0; r < world_size_; ++r) sizes[r] = static_cast<int64_t>(parts[r].nbytes());
    std::memcpy(slot, sizes.data(), sizes.size() * sizeof(int64_t));
  }
  LOOM_RETURN_IF_ERROR(Exchange("Scatter"));
  if (rank_ != root) std::memcpy(sizes.data(), slot, sizes.size() * sizeof(int64_t));
  // Then rounds in which the root's slot holds one stretch of every other rank's part.
  const int64_t stretch = kSlotBytes / world_size_ / 64 * 64;
  int64_t rounds = 0;
  for (int64_t r = 0; r < world_size_; ++r) {
    if (r != root) rounds = std::max(rounds, (sizes[r] + stretch - 1) / stretch);
  }
  const bool fits = rank_ == root || sizes[rank_] == static_cast<int64_t>(out.nbytes());
  auto* mine = static_cast<uint8_t*>(out.raw_data());
  for (int64_t j = 0; j < rounds; ++j) {
    slot = Slot(NextRound(), root);
    const int64_t off = j * stretch;
    if (rank_ == root) {
      for (int64_t r = 0; r < world_size_; ++r) {
        if (r == root || off >= sizes[r]) continue;
        std::memcpy(slot + r * stretch, static_cast<const uint8_t*>(parts[r].raw_data()) + off,
                    std::min(stretch, sizes[r] - off));
      }
    }
    LOOM_RETURN_IF_ERROR(Exchange("Scatter"));
    if (rank_ != root && fits && off < sizes[rank_]) {
      std::memcpy(mine + off, slot + rank_ * stretch, std::min(stretch, sizes[rank_] - off));
    }
  }
  if (!fits) {
    return absl::InvalidArgumentError(absl::StrCat("Scatter: rank ", rank_, " expected ",
                                                   out.nbytes(), " bytes (", out.DebugString(),
                                                   "), root ", root, " sent ", sizes[rank_]));
  }
  return absl::OkStatus();
}

absl::Status ShmCommunicator::Barrier() {
  if (world_size_ == 1) return absl::OkStatus();
  absl::MutexLock lock(&mu_);
  LOOM_RETURN_IF_ERROR(CheckUsable("Barrier"));
  return Exchange("Barrier");
}

}  // namespace loom
