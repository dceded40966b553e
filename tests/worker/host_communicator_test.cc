// The host communicators between real processes: GlooCommunicator over loopback TCP and
// ShmCommunicator through shared memory run the same roles, and each collective gives every rank
// what the definition says; failures come back as Status values, never as a hang or a crash.
#include <dirent.h>

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "tests/test_paths.h"
#include "tests/worker/rank_processes.h"
#include "worker/comm/gloo_communicator.h"
#include "worker/comm/shm_communicator.h"

namespace loom {
namespace {

using std::chrono::milliseconds;
using testing::RankContext;

// The communicator RunRanks' "comm" argument names: "gloo", or "shm" (which must not fall back).
absl::StatusOr<std::unique_ptr<Communicator>> Connect(const RankContext& c,
                                                      milliseconds timeout = milliseconds(20000)) {
  LOOM_ASSIGN_OR_RETURN(std::shared_ptr<gloo::rendezvous::Store> store,
                        MakeFileStore(c.dir + "/store"));
  if (c.args.count("comm") != 0 && c.args.at("comm") == "shm") {
    ShmOptions options{c.rank, c.world_size, store, "loom", timeout};
    LOOM_ASSIGN_OR_RETURN(std::unique_ptr<ShmCommunicator> comm, ShmCommunicator::Create(options));
    if (comm == nullptr) return absl::InternalError("the ranks could not share memory");
    return std::unique_ptr<Communicator>(std::move(comm));
  }
  GlooOptions options;
  options.rank = c.rank;
  options.world_size = c.world_size;
  options.store = store;
  options.timeout = timeout;
  LOOM_ASSIGN_OR_RETURN(std::unique_ptr<GlooCommunicator> comm, GlooCommunicator::Create(options));
  return std::unique_ptr<Communicator>(std::move(comm));
}

absl::Status Expect(bool ok, const std::string& what) {
  return ok ? absl::OkStatus() : absl::InternalError(what);
}

// A size that spans several of Gloo's ring segments, plus an odd tail.
constexpr int64_t kLargeElements = (int64_t{1} << 20) + 3;

const bool kAllReduce = testing::RegisterRankRole("allreduce", [](const RankContext& c) {
  LOOM_ASSIGN_OR_RETURN(auto comm, Connect(c));
  for (int64_t n : {int64_t{15}, kLargeElements}) {
    Tensor t = Tensor::Empty(DType::kF32, {n});
    for (int64_t i = 0; i < n; ++i) t.data<float>()[i] = static_cast<float>(c.rank * 100 + i % 7);
    LOOM_RETURN_IF_ERROR(comm->AllReduceSum(t));
    const int64_t w = c.world_size;
    for (int64_t i = 0; i < n; ++i) {
      const float want = static_cast<float>(100 * w * (w - 1) / 2 + w * (i % 7));
      if (t.data<float>()[i] != want) {
        return absl::InternalError(
            absl::StrCat("element ", i, " of ", n, ": ", t.data<float>()[i], " != ", want));
      }
    }
  }
  return absl::OkStatus();
});

const bool kAllGatherLastDim =
    testing::RegisterRankRole("allgather_last_dim", [](const RankContext& c) {
      LOOM_ASSIGN_OR_RETURN(auto comm, Connect(c));
      const int64_t rows = 3, n = 5, w = c.world_size;
      Tensor in = Tensor::Empty(DType::kF32, {rows, n});
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t j = 0; j < n; ++j) in.data<float>()[r * n + j] = c.rank * 1000 + r * 10 + j;
      }
      Tensor out = Tensor::Empty(DType::kF32, {rows, w * n});
      LOOM_RETURN_IF_ERROR(comm->AllGatherLastDim(in, out));
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t k = 0; k < w * n; ++k) {
          const float want = static_cast<float>((k / n) * 1000 + r * 10 + k % n);
          LOOM_RETURN_IF_ERROR(
              Expect(out.data<float>()[r * w * n + k] == want,
                     absl::StrCat("out[", r, ", ", k, "] = ", out.data<float>()[r * w * n + k],
                                  " != ", want)));
        }
      }
      return absl::OkStatus();
    });

const bool kBroadcastAndAllGather =
    testing::RegisterRankRole("broadcast_allgather", [](const RankContext& c) {
      LOOM_ASSIGN_OR_RETURN(auto comm, Connect(c));
      const int64_t root = c.world_size - 1;
      Tensor t = Tensor::Empty(DType::kI32, {2, 3});
      for (int i = 0; i < 6; ++i) t.data<int32_t>()[i] = c.rank == root ? 7 * i + 1 : -1;
      LOOM_RETURN_IF_ERROR(comm->Broadcast(t, root));
      for (int i = 0; i < 6; ++i) {
        LOOM_RETURN_IF_ERROR(Expect(t.data<int32_t>()[i] == 7 * i + 1, "broadcast value"));
      }
      Tensor mine = Tensor::Empty(DType::kI64, {2});
      mine.data<int64_t>()[0] = c.rank;
      mine.data<int64_t>()[1] = -c.rank;
      Tensor all = Tensor::Empty(DType::kI64, {c.world_size, 2});
      LOOM_RETURN_IF_ERROR(comm->AllGather(mine, all));
      for (int r = 0; r < c.world_size; ++r) {
        LOOM_RETURN_IF_ERROR(
            Expect(all.data<int64_t>()[2 * r] == r && all.data<int64_t>()[2 * r + 1] == -r,
                   absl::StrCat("allgather row ", r)));
      }
      return comm->Barrier();
    });

// Bad arguments are refused before Gloo sees them, and the communicator stays usable.
const bool kBadArguments = testing::RegisterRankRole("bad_arguments", [](const RankContext& c) {
  LOOM_ASSIGN_OR_RETURN(auto comm, Connect(c));
  Tensor ints = Tensor::Empty(DType::kI32, {4});
  LOOM_RETURN_IF_ERROR(Expect(absl::IsInvalidArgument(comm->AllReduceSum(ints)), "i32 sum"));
  Tensor in = Tensor::Empty(DType::kF32, {2, 3});
  Tensor wrong = Tensor::Empty(DType::kF32, {2, 3});
  LOOM_RETURN_IF_ERROR(
      Expect(absl::IsInvalidArgument(comm->AllGatherLastDim(in, wrong)), "gather shape"));
  LOOM_ASSIGN_OR_RETURN(Tensor strided, Tensor::Empty(DType::kF32, {4, 4}).Slice(1, 0, 2));
  LOOM_RETURN_IF_ERROR(Expect(absl::IsInvalidArgument(comm->AllReduceSum(strided)), "strided"));
  LOOM_RETURN_IF_ERROR(
      Expect(absl::IsInvalidArgument(comm->Broadcast(in, c.world_size)), "broadcast root"));
  Tensor ones = Tensor::Empty(DType::kF32, {3});
  for (int i = 0; i < 3; ++i) ones.data<float>()[i] = 1;
  LOOM_RETURN_IF_ERROR(comm->AllReduceSum(ones));
  return Expect(ones.data<float>()[2] == c.world_size, "sum after refused calls");
});

// Part r of a scatter: r * 3 rows (rank 0's is empty) of `cols` i32 values naming r and i.
Tensor ScatterPart(int64_t r, int64_t cols) {
  Tensor t = Tensor::Empty(DType::kI32, {r * 3, cols});
  for (int64_t i = 0; i < t.numel(); ++i) t.data<int32_t>()[i] = static_cast<int32_t>(r * 7919 + i);
  return t;
}

// Every rank receives its own part, of its own size, from a root that is not rank 0; the root's
// out may be its own part. A large part spans several socket writes.
const bool kScatter = testing::RegisterRankRole("scatter", [](const RankContext& c) {
  LOOM_ASSIGN_OR_RETURN(auto comm, Connect(c));
  const int64_t root = c.world_size - 1;
  for (int64_t cols : {int64_t{5}, kLargeElements / 3}) {
    std::vector<Tensor> parts;
    if (c.rank == root) {
      for (int64_t r = 0; r < c.world_size; ++r) parts.push_back(ScatterPart(r, cols));
    }
    Tensor out = c.rank == root ? parts[root] : Tensor::Empty(DType::kI32, {c.rank * 3, cols});
    LOOM_RETURN_IF_ERROR(comm->Scatter(parts, out, root));
    const Tensor want = ScatterPart(c.rank, cols);
    LOOM_RETURN_IF_ERROR(
        Expect(std::memcmp(out.raw_data(), want.raw_data(), want.nbytes()) == 0,
               absl::StrCat("rank ", c.rank, " got another part (", cols, " columns)")));
  }
  return comm->Barrier();
});

// The root refuses bad parts before sending anything (each rank is the root of its own refused
// calls, so nobody waits), and the group still scatters afterwards.
const bool kScatterBadArguments =
    testing::RegisterRankRole("scatter_bad_arguments", [](const RankContext& c) {
      LOOM_ASSIGN_OR_RETURN(auto comm, Connect(c));
      const int64_t me = c.rank;
      auto refused = [&](std::vector<Tensor> parts, Tensor out, int64_t root,
                         const std::string& says) -> absl::Status {
        const absl::Status s = comm->Scatter(parts, out, root);
        return Expect(absl::IsInvalidArgument(s) && absl::StrContains(s.message(), says),
                      absl::StrCat("expected \"", says, "\", got ", s.ToString()));
      };
      std::vector<Tensor> two = {Tensor::Empty(DType::kF32, {2}), Tensor::Empty(DType::kF32, {2})};
      Tensor out = Tensor::Empty(DType::kF32, {2});
      LOOM_RETURN_IF_ERROR(refused({two[0]}, out, me, "one part per rank (2), got 1"));
      LOOM_RETURN_IF_ERROR(refused({two[0], two[1], two[0]}, out, me, "got 3"));
      LOOM_RETURN_IF_ERROR(
          refused(two, Tensor::Empty(DType::kF32, {3}), me, "must have its part's shape [2]"));
      LOOM_RETURN_IF_ERROR(refused(two, Tensor::Empty(DType::kI32, {2}), me, "must be I32"));
      LOOM_ASSIGN_OR_RETURN(Tensor strided, Tensor::Empty(DType::kF32, {2, 4}).Slice(1, 0, 2));
      LOOM_RETURN_IF_ERROR(refused({strided, strided}, strided, me, "out must be contiguous"));
      LOOM_RETURN_IF_ERROR(refused({two[0], strided}, out, me, "part 1 must be contiguous"));
      LOOM_RETURN_IF_ERROR(refused(two, out, 2, "root 2 outside [0, 2)"));
      std::vector<Tensor> parts;
      if (me == 0) parts = {ScatterPart(0, 2), ScatterPart(1, 2)};
      Tensor got = me == 0 ? parts[0] : Tensor::Empty(DType::kI32, {3, 2});
      LOOM_RETURN_IF_ERROR(comm->Scatter(parts, got, 0));
      return Expect(got.numel() == 0 || got.data<int32_t>()[5] == 7919 + 5, "scatter after");
    });

// A receiver whose out is smaller or larger than its part (or expects bytes of an empty one)
// refuses the call, which the root cannot know, without crashing or desynchronising the group:
// the next scatter is right.
const bool kScatterWrongSize =
    testing::RegisterRankRole("scatter_wrong_size", [](const RankContext& c) {
      LOOM_ASSIGN_OR_RETURN(auto comm, Connect(c));
      struct Case {
        int64_t sent_rows, out_rows;
        const char* says;
      };
      for (const Case& k : {Case{3, 2, "sent 48"}, Case{3, 4, "sent 48"}, Case{0, 3, "sent 0"}}) {
        std::vector<Tensor> parts;
        if (c.rank == 0) parts = {ScatterPart(0, 4), Tensor::Empty(DType::kI32, {k.sent_rows, 4})};
        Tensor out = c.rank == 0 ? parts[0] : Tensor::Empty(DType::kI32, {k.out_rows, 4});
        const absl::Status s = comm->Scatter(parts, out, 0);
        const bool refused = absl::IsInvalidArgument(s) && absl::StrContains(s.message(), k.says);
        LOOM_RETURN_IF_ERROR(
            Expect(c.rank == 1 ? refused : s.ok(),
                   absl::StrCat("rank ", c.rank, ", ", k.out_rows, " rows: ", s.ToString())));
      }
      const Tensor want = ScatterPart(1, 4);
      std::vector<Tensor> parts;
      if (c.rank == 0) parts = {ScatterPart(0, 4), want};
      Tensor out = c.rank == 0 ? parts[0] : Tensor::Empty(DType::kI32, {3, 4});
      LOOM_RETURN_IF_ERROR(comm->Scatter(parts, out, 0));
      return Expect(c.rank == 0 || std::memcmp(out.raw_data(), want.raw_data(), want.nbytes()) == 0,
                    "the scatter after a refused one");
    });

// Rank 1 leaves right after connecting; rank 0's next collective fails with a Status that names
// the operation and the rank, and so does every later one.
const bool kPeerDies = testing::RegisterRankRole("peer_dies", [](const RankContext& c) {
  LOOM_ASSIGN_OR_RETURN(auto comm, Connect(c, milliseconds(3000)));
  if (c.rank == 1) _exit(0);
  Tensor t = Tensor::Empty(DType::kF32, {1024});
  absl::Status first = comm->AllReduceSum(t);
  LOOM_RETURN_IF_ERROR(Expect(!first.ok(), "allreduce with a dead peer succeeded"));
  LOOM_RETURN_IF_ERROR(Expect(absl::StrContains(first.message(), "AllReduceSum") &&
                                  absl::StrContains(first.message(), "rank 0"),
                              absl::StrCat("unhelpful error: ", first.ToString())));
  absl::Status later = comm->Barrier();
  return Expect(absl::IsFailedPrecondition(later),
                absl::StrCat("after a failure: ", later.ToString()));
});

constexpr milliseconds kGroupTimeout(20000);

class HostCommunicatorTest : public ::testing::TestWithParam<std::string> {
 protected:
  std::map<std::string, std::string> Args() const { return {{"comm", GetParam()}}; }
};


TEST_P(HostCommunicatorTest, AllReduceSumGivesEveryRankTheSum) {
  for (int world : {2, 3, 4}) {
    absl::Status s = testing::RunRanks("allreduce", world, Args(), kGroupTimeout);
    EXPECT_TRUE(s.ok()) << "world " << world << ": " << s;
  }
}

TEST_P(HostCommunicatorTest, AllGatherLastDimPlacesEachRankSideBySideInEveryRow) {
  for (int world : {2, 3, 4}) {
    absl::Status s = testing::RunRanks("allgather_last_dim", world, Args(), kGroupTimeout);
    EXPECT_TRUE(s.ok()) << "world " << world << ": " << s;
  }
}

TEST_P(HostCommunicatorTest, BroadcastAllGatherAndBarrierMoveRawBytes) {
  for (int world : {2, 4}) {
    absl::Status s = testing::RunRanks("broadcast_allgather", world, Args(), kGroupTimeout);
    EXPECT_TRUE(s.ok()) << "world " << world << ": " << s;
  }
}

TEST_P(HostCommunicatorTest, BadArgumentsAreRefusedAndLeaveTheGroupUsable) {
  absl::Status s = testing::RunRanks("bad_arguments", 2, Args(), kGroupTimeout);
  EXPECT_TRUE(s.ok()) << s;
}

TEST_P(HostCommunicatorTest, ScatterGivesEachRankItsOwnPartOfItsOwnSize) {
  for (int world : {2, 3, 4}) {
    absl::Status s = testing::RunRanks("scatter", world, Args(), kGroupTimeout);
    EXPECT_TRUE(s.ok()) << "world " << world << ": " << s;
  }
}

TEST_P(HostCommunicatorTest, ScatterRefusesBadPartsClearlyAndLeavesTheGroupUsable) {
  absl::Status s = testing::RunRanks("scatter_bad_arguments", 2, Args(), kGroupTimeout);
  EXPECT_TRUE(s.ok()) << s;
}

TEST_P(HostCommunicatorTest, ScatterIntoAWronglySizedOutFailsOnThatRankAlone) {
  absl::Status s = testing::RunRanks("scatter_wrong_size", 2, Args(), kGroupTimeout);
  EXPECT_TRUE(s.ok()) << s;
}

TEST_P(HostCommunicatorTest, ADeadPeerFailsTheCollectiveWithAStatus) {
  absl::Status s = testing::RunRanks("peer_dies", 2, Args(), kGroupTimeout);
  EXPECT_TRUE(s.ok()) << s;
}

INSTANTIATE_TEST_SUITE_P(Kinds, HostCommunicatorTest, ::testing::Values("gloo", "shm"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return info.param;
                         });

// One rank told to use Gloo (LOOM_CPU_COLLECTIVES=gloo) makes every rank of the group decline
// shared memory, so they all fall back together.
const bool kShmDeclined = testing::RegisterRankRole("shm_declined", [](const RankContext& c) {
  if (c.rank == 1) setenv("LOOM_CPU_COLLECTIVES", "gloo", 1);
  LOOM_ASSIGN_OR_RETURN(std::shared_ptr<gloo::rendezvous::Store> store,
                        MakeFileStore(c.dir + "/store"));
  ShmOptions options{c.rank, c.world_size, store, "loom", milliseconds(20000)};
  LOOM_ASSIGN_OR_RETURN(std::unique_ptr<ShmCommunicator> comm, ShmCommunicator::Create(options));
  return Expect(comm == nullptr, absl::StrCat("rank ", c.rank, " joined shared memory"));
});

// Once Create returns, the segment is mapped by every rank and its name is gone from /dev/shm:
// a crash later leaves nothing behind.
const bool kShmUnlinked = testing::RegisterRankRole("shm_unlinked", [](const RankContext& c) {
  LOOM_ASSIGN_OR_RETURN(auto comm, Connect(c));
  if (c.rank == 0) {
    const std::string mine = absl::StrCat("loom-", getpid(), "-");
    DIR* dir = opendir("/dev/shm");
    if (dir == nullptr) return absl::InternalError("cannot list /dev/shm");
    bool found = false;
    while (dirent* e = readdir(dir)) found = found || absl::StartsWith(e->d_name, mine);
    closedir(dir);
    LOOM_RETURN_IF_ERROR(Expect(!found, "the segment's name is still in /dev/shm"));
  }
  return comm->Barrier();
});

TEST(ShmCommunicatorTest, OneRankToldToUseGlooMakesTheWholeGroupFallBack) {
  absl::Status s = testing::RunRanks("shm_declined", 3, {}, kGroupTimeout);
  EXPECT_TRUE(s.ok()) << s;
}

TEST(ShmCommunicatorTest, TheSegmentsNameIsUnlinkedOnceEveryRankHasMappedIt) {
  absl::Status s = testing::RunRanks("shm_unlinked", 2, {{"comm", "shm"}}, kGroupTimeout);
  EXPECT_TRUE(s.ok()) << s;
}

TEST(ShmCommunicatorTest, RendezvousWithAMissingRankTimesOut) {
  auto store = MakeFileStore(testing::MakeTempDir("loom-shm") + "/store");
  ASSERT_TRUE(store.ok()) << store.status();
  ShmOptions options{0, 2, *store, "loom", milliseconds(300)};
  const auto start = std::chrono::steady_clock::now();
  auto comm = ShmCommunicator::Create(options);
  ASSERT_FALSE(comm.ok());
  EXPECT_TRUE(absl::IsUnavailable(comm.status())) << comm.status();
  EXPECT_TRUE(absl::StrContains(comm.status().message(), "rank 0 of 2")) << comm.status();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST(ShmCommunicatorTest, CreateRefusesBadOptions) {
  ShmOptions options;
  options.world_size = 2;
  options.rank = 2;
  EXPECT_TRUE(absl::IsInvalidArgument(ShmCommunicator::Create(options).status()));
  options.rank = 0;  // no store
  EXPECT_TRUE(absl::IsInvalidArgument(ShmCommunicator::Create(options).status()));
}

TEST(ShmCommunicatorTest, WorldOfOneNeedsNoPeers) {
  auto store = MakeFileStore(testing::MakeTempDir("loom-shm") + "/store");
  ASSERT_TRUE(store.ok()) << store.status();
  ShmOptions options{0, 1, *store, "loom", milliseconds(1000)};
  auto comm = ShmCommunicator::Create(options);
  ASSERT_TRUE(comm.ok()) << comm.status();
  ASSERT_NE(*comm, nullptr);
  Tensor t = Tensor::Empty(DType::kF32, {2, 3});
  t.data<float>()[4] = 5;
  EXPECT_TRUE((*comm)->AllReduceSum(t).ok());
  EXPECT_EQ(t.data<float>()[4], 5);
  Tensor all = Tensor::Empty(DType::kF32, {1, 2, 3});
  EXPECT_TRUE((*comm)->AllGather(t, all).ok());
  EXPECT_EQ(all.data<float>()[4], 5);
  EXPECT_TRUE((*comm)->Barrier().ok());
}

TEST(GlooCommunicatorTest, RendezvousWithAMissingRankTimesOut) {
  GlooOptions options;
  options.rank = 0;
  options.world_size = 2;
  auto store = MakeFileStore(testing::MakeTempDir("loom-gloo") + "/store");
  ASSERT_TRUE(store.ok()) << store.status();
  options.store = *store;
  options.timeout = milliseconds(300);
  const auto start = std::chrono::steady_clock::now();
  auto comm = GlooCommunicator::Create(options);
  ASSERT_FALSE(comm.ok());
  EXPECT_TRUE(absl::IsUnavailable(comm.status())) << comm.status();
  EXPECT_TRUE(absl::StrContains(comm.status().message(), "rank 0 of 2")) << comm.status();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST(GlooCommunicatorTest, CreateRefusesBadOptions) {
  GlooOptions options;
  options.world_size = 2;
  options.rank = 2;
  EXPECT_TRUE(absl::IsInvalidArgument(GlooCommunicator::Create(options).status()));
  options.rank = 0;  // no store
  EXPECT_TRUE(absl::IsInvalidArgument(GlooCommunicator::Create(options).status()));
}

TEST(GlooCommunicatorTest, WorldOfOneNeedsNoPeers) {
  GlooOptions options;
  auto store = MakeFileStore(testing::MakeTempDir("loom-gloo") + "/store");
  ASSERT_TRUE(store.ok()) << store.status();
  options.store = *store;
  auto comm = GlooCommunicator::Create(options);
  ASSERT_TRUE(comm.ok()) << comm.status();
  Tensor t = Tensor::Empty(DType::kF32, {2, 3});
  t.data<float>()[4] = 5;
  EXPECT_TRUE((*comm)->AllReduceSum(t).ok());
  Tensor out = Tensor::Empty(DType::kF32, {2, 3});
  EXPECT_TRUE((*comm)->AllGatherLastDim(t, out).ok());
  EXPECT_EQ(out.data<float>()[4], 5);
  EXPECT_TRUE((*comm)->Broadcast(t, 0).ok());
  Tensor mine = Tensor::Empty(DType::kF32, {2, 3});
  EXPECT_TRUE((*comm)->Scatter({t}, mine, 0).ok());
  EXPECT_EQ(mine.data<float>()[4], 5);
  EXPECT_TRUE((*comm)->Barrier().ok());
}

}  // namespace
}  // namespace loom
