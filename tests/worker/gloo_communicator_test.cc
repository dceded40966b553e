// GlooCommunicator between real processes over loopback TCP: each collective gives every rank
// what the definition says, and failures come back as Status values, never as a hang or a crash.
#include "worker/comm/gloo_communicator.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "tests/test_paths.h"
#include "tests/worker/rank_processes.h"

namespace loom {
namespace {

using std::chrono::milliseconds;
using testing::RankContext;

absl::StatusOr<std::unique_ptr<GlooCommunicator>> Connect(
    const RankContext& c, milliseconds timeout = milliseconds(20000)) {
  GlooOptions options;
  options.rank = c.rank;
  options.world_size = c.world_size;
  LOOM_ASSIGN_OR_RETURN(options.store, MakeFileStore(c.dir + "/store"));
  options.timeout = timeout;
  return GlooCommunicator::Create(options);
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

TEST(GlooCommunicatorTest, AllReduceSumGivesEveryRankTheSum) {
  for (int world : {2, 3, 4}) {
    absl::Status s = testing::RunRanks("allreduce", world, {}, kGroupTimeout);
    EXPECT_TRUE(s.ok()) << "world " << world << ": " << s;
  }
}

TEST(GlooCommunicatorTest, AllGatherLastDimPlacesEachRankSideBySideInEveryRow) {
  for (int world : {2, 3, 4}) {
    absl::Status s = testing::RunRanks("allgather_last_dim", world, {}, kGroupTimeout);
    EXPECT_TRUE(s.ok()) << "world " << world << ": " << s;
  }
}

TEST(GlooCommunicatorTest, BroadcastAllGatherAndBarrierMoveRawBytes) {
  for (int world : {2, 4}) {
    absl::Status s = testing::RunRanks("broadcast_allgather", world, {}, kGroupTimeout);
    EXPECT_TRUE(s.ok()) << "world " << world << ": " << s;
  }
}

TEST(GlooCommunicatorTest, BadArgumentsAreRefusedAndLeaveTheGroupUsable) {
  absl::Status s = testing::RunRanks("bad_arguments", 2, {}, kGroupTimeout);
  EXPECT_TRUE(s.ok()) << s;
}

TEST(GlooCommunicatorTest, ADeadPeerFailsTheCollectiveWithAStatus) {
  absl::Status s = testing::RunRanks("peer_dies", 2, {}, kGroupTimeout);
  EXPECT_TRUE(s.ok()) << s;
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
  EXPECT_TRUE((*comm)->Barrier().ok());
}

}  // namespace
}  // namespace loom
