// Rank 0's NCCL id reaches every rank through the store; failures are errors, not hangs.
#include "worker/comm/nccl_id_exchange.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "gloo/rendezvous/hash_store.h"

namespace loom {
namespace {

using std::chrono::milliseconds;

TEST(NcclIdExchangeTest, EveryRankGetsRankZerosBytes) {
  gloo::rendezvous::HashStore store;
  const std::string id(128, '\0');
  std::string made = id;
  made[0] = '\x7f';
  made[127] = '\x01';
  int calls = 0;
  auto make = [&]() -> absl::StatusOr<std::string> {
    ++calls;
    return made;
  };
  std::vector<absl::StatusOr<std::string>> got(4, absl::UnknownError("not run"));
  std::vector<std::thread> ranks;
  for (int r = 3; r >= 0; --r) {  // the waiting ranks first
    ranks.emplace_back(
        [&, r] { got[r] = ShareNcclId(store, "g/nccl_id", r, make, milliseconds(5000)); });
  }
  for (std::thread& t : ranks) t.join();
  EXPECT_EQ(calls, 1);  // only rank 0 makes one
  for (int r = 0; r < 4; ++r) {
    ASSERT_TRUE(got[r].ok()) << got[r].status();
    EXPECT_EQ(*got[r], made) << "rank " << r;  // binary bytes, NULs included
  }
}

TEST(NcclIdExchangeTest, RankZeroFailingToMakeOneFailsAndTheOthersTimeOut) {
  gloo::rendezvous::HashStore store;
  auto fail = []() -> absl::StatusOr<std::string> {
    return absl::FailedPreconditionError("no NCCL here");
  };
  auto zero = ShareNcclId(store, "g/nccl_id", 0, fail, milliseconds(100));
  EXPECT_EQ(zero.status().code(), absl::StatusCode::kFailedPrecondition);
  auto one = ShareNcclId(store, "g/nccl_id", 1, fail, milliseconds(100));
  ASSERT_EQ(one.status().code(), absl::StatusCode::kDeadlineExceeded) << one.status();
  EXPECT_TRUE(absl::StrContains(one.status().message(), "g/nccl_id")) << one.status();
}

}  // namespace
}  // namespace loom
