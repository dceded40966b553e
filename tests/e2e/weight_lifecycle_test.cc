// The weight lifecycle as users drive it: `loom serve` processes (TP=2 unless said) changed at run
// time through CollectiveRpc, checked against HF transformers' greedy outputs for the fixture
// model. Dummy start then update_config + reload_weights; dummy weights that do not depend on the
// TP size; sharded state saved at TP=2 and loaded at TP=2/1/4; the broadcast strategy; a trainer
// pushing weights; a staged swap while 8 clients generate; bad sources that change nothing; RSS
// flat over 50 reloads, in-place ones keeping the weight buffers where they are.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/safetensors.h"
#include "loom/v1/loom.grpc.pb.h"
#include "tests/e2e/model_dir.h"
#include "tests/e2e/serve_process.h"
#include "tests/e2e/weight_test_util.h"
#include "tests/test_paths.h"

namespace loom {
namespace {

using nlohmann::json;
using testing::HfReference;
using testing::Server;

std::string Model() { return testing::WeightTestModel(); }
HfReference Reference() { return testing::WeightTestReference(); }
std::string Serve(const std::string& extra) { return testing::WeightTestServe(extra); }
using Generated = testing::Streamed;
using testing::GreedyAll;
using testing::Call;
using testing::CallResult;

Generated Generate(loom::v1::Loom::Stub& stub, const std::vector<int32_t>& prompt,
                   int max_tokens, const std::function<void()>& on_message = {}) {
  return testing::GenerateIds(stub, prompt, max_tokens, on_message);
}

// One tensor of a saved sharded-state rank file.
Tensor SavedTensor(const std::string& dir, int rank, const std::string& name) {
  auto file = SafetensorsFile::Open(absl::StrCat(dir, "/model-rank-", rank, "-part-0.safetensors"));
  EXPECT_TRUE(file.ok()) << file.status();
  auto t = (*file)->Get(name);
  EXPECT_TRUE(t.ok()) << t.status();
  return t->Clone();
}

TEST(WeightLifecycleTest, DummyStartThenUpdateConfigAndReloadGivesTheHfOutputs) {
  const HfReference ref = Reference();
  Server server(Serve("--tp 2 --load-format dummy"));
  ASSERT_SERVING(server);
  const auto dummy = GreedyAll(server, ref);
  EXPECT_NE(dummy, ref.greedy) << "dummy weights should not produce the trained model's tokens";
  auto status = server.Status();
  for (const auto& r : status.ranks()) {
    EXPECT_TRUE(r.dummy());
    EXPECT_EQ(r.load_format(), "dummy");
    EXPECT_EQ(r.serving_version(), 1u);
  }

  ASSERT_CALL_OK(Call(server, "update_config", {{"load_config", {{"load_format", "auto"}}}}));
  CallResult reload = Call(server, "reload_weights");
  ASSERT_CALL_OK(reload);
  // Each rank reads its own part of the checkpoint: about half of it at TP=2, never all.
  const auto checkpoint_bytes =
      static_cast<int64_t>(std::filesystem::file_size(Model() + "/model.safetensors"));
  for (const json& r : reload.ranks) {
    EXPECT_GT(r["bytes_read"].get<int64_t>(), checkpoint_bytes / 3);
    EXPECT_LT(r["bytes_read"].get<int64_t>(), checkpoint_bytes * 2 / 3);
    EXPECT_GE(r["seconds"].get<double>(), 0.0);
    EXPECT_TRUE(r.contains("gb_per_s"));
  }
  EXPECT_EQ(GreedyAll(server, ref), ref.greedy);
  status = server.Status();
  EXPECT_EQ(status.serving_weight_version(), 2u);
  for (const auto& r : status.ranks()) {
    EXPECT_FALSE(r.dummy());
    EXPECT_EQ(r.load_format(), "auto");
    EXPECT_EQ(r.weight_source(), Model());
    EXPECT_EQ(r.serving_version(), 2u);
    EXPECT_EQ(r.weight_state(), "ready");
  }
  Generated g = Generate(server.stub(), ref.prompts[0], 4);
  for (uint64_t v : g.versions) EXPECT_EQ(v, 2u);
}

TEST(WeightLifecycleTest, DummyWeightsAreTheSameModelAtEveryTpSizeAndDifferPerLayer) {
  const HfReference ref = Reference();
  std::vector<std::vector<std::vector<int32_t>>> outputs;
  const std::string saved = testing::MakeTempDir("loom-dummy-state");
  for (int tp : {1, 2, 4}) {
    Server server(Serve(absl::StrCat("--tp ", tp, " --load-format dummy --dummy-seed 7 ",
                                     "--dummy-range 0.5")));
    ASSERT_SERVING(server);
    outputs.push_back(GreedyAll(server, ref));
    if (tp == 1) ASSERT_CALL_OK(Call(server, "save_sharded_state", {{"path", saved}}));
  }
  EXPECT_EQ(outputs[0], outputs[1]);
  EXPECT_EQ(outputs[0], outputs[2]);
  // A range this large makes the outputs depend on the weights (not all one token).
  std::set<int32_t> distinct(outputs[0][0].begin(), outputs[0][0].end());
  EXPECT_GT(distinct.size(), 1u);

  const Tensor a = SavedTensor(saved, 0, "model.layers.0.mlp.down_proj.weight");
  const Tensor b = SavedTensor(saved, 0, "model.layers.1.mlp.down_proj.weight");
  ASSERT_EQ(a.shape(), b.shape());
  int64_t same = 0;
  float max_abs = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    same += a.data<float>()[i] == b.data<float>()[i];
    max_abs = std::max(max_abs, std::abs(a.data<float>()[i]));
  }
  EXPECT_LT(same, a.numel() / 100) << "layer 0 and layer 1 got the same dummy values";
  EXPECT_LE(max_abs, 0.5f);
  EXPECT_GT(max_abs, 0.25f);
}

TEST(WeightLifecycleTest, ShardedStateSavedAtTp2LoadsExactlyAtTp2Tp1AndTp4) {
  const HfReference ref = Reference();
  const std::string saved = testing::MakeTempDir("loom-sharded") + "/state";
  {
    std::string out;
    ASSERT_EQ(testing::RunCommand(absl::StrCat(testing::BinaryDir(), "/tools/loom ",
                                               "save-sharded-state --model ", Model(),
                                               " --tp 2 --output ", saved, testing::kWeightTestEngine),
                                  &out),
              0)
        << out;
  }
  for (const char* f : {"config.json", "model-rank-0-part-0.safetensors",
                        "model-rank-1-part-0.safetensors"}) {
    EXPECT_TRUE(std::filesystem::exists(absl::StrCat(saved, "/", f))) << f;
  }
  EXPECT_FALSE(std::filesystem::exists(saved + "/model.safetensors"));
  for (int tp : {2, 1, 4}) {
    SCOPED_TRACE(absl::StrCat("tp ", tp));
    Server server(absl::StrCat("--model ", saved, testing::kWeightTestEngine, " --tp ", tp,
                               " --load-format sharded_state"));
    ASSERT_SERVING(server);
    EXPECT_EQ(GreedyAll(server, ref), ref.greedy);
    if (tp != 2) continue;
    // At the saved TP size a rank reads its own file and nothing else.
    CallResult d = Call(server, "describe");
    ASSERT_CALL_OK(d);
    for (int r = 0; r < 2; ++r) {
      const json load = d.ranks[r]["initial_load"];
      const std::string own = absl::StrCat(saved, "/model-rank-", r, "-part-0.safetensors");
      EXPECT_EQ(load["files"], json::array({own}));
      EXPECT_GT(load["bytes_read"].get<int64_t>(), 0);
      EXPECT_LE(load["bytes_read"].get<int64_t>(),
                static_cast<int64_t>(std::filesystem::file_size(own)));
    }
  }
}

TEST(WeightLifecycleTest, BroadcastStrategyGivesTheAutoOutputsAndOnlyRankZeroReads) {
  const HfReference ref = Reference();
  const auto checkpoint_bytes =
      static_cast<int64_t>(std::filesystem::file_size(Model() + "/model.safetensors"));
  for (int tp : {2, 4}) {
    SCOPED_TRACE(absl::StrCat("tp ", tp));
    Server server(Serve(absl::StrCat("--tp ", tp, " --load-strategy broadcast")));
    ASSERT_SERVING(server);
    EXPECT_EQ(GreedyAll(server, ref), ref.greedy);
    CallResult d = Call(server, "describe");
    ASSERT_CALL_OK(d);
    EXPECT_GT(d.ranks[0]["initial_load"]["bytes_read"].get<int64_t>(), 0);
    for (int r = 1; r < tp; ++r) {
      const json load = d.ranks[r]["initial_load"];
      EXPECT_EQ(load["bytes_read"].get<int64_t>(), 0);
      EXPECT_EQ(load["files"], json::array());
      // A rank receives exactly its part (f32 file, f32 weights): about 1/tp, not the model.
      const json part_bytes = d.ranks[r]["weights"]["progress"]["bytes_total"];
      EXPECT_EQ(load["bytes_received"], part_bytes);
      EXPECT_LT(load["bytes_received"].get<int64_t>(), checkpoint_bytes / tp * 6 / 5);
    }
  }
}

TEST(WeightLifecycleTest, ATrainerPushGivesTheAutoOutputs) {
  const HfReference ref = Reference();
  Server server(Serve("--tp 2 --load-format dummy"));
  ASSERT_SERVING(server);
  std::string out;
  ASSERT_EQ(testing::RunCommand(absl::StrCat(testing::BinaryDir(), "/tools/loom-push-weights ",
                                             "--rpc-timeout 60 --model ", Model(), " --address ",
                                             server.address()),
                                &out),
            0)
      << out;
  EXPECT_TRUE(absl::StrContains(out, "committed version 2")) << out;
  EXPECT_EQ(GreedyAll(server, ref), ref.greedy);
  const auto pushed = server.Status();
  for (const auto& r : pushed.ranks()) {
    EXPECT_EQ(r.load_format(), "distributed");
    EXPECT_FALSE(r.dummy());
  }
  // A push that names a tensor the model does not have is refused before any data moves.
  const std::string other = testing::FixtureModelDir("qwen3");
  ASSERT_NE(testing::RunCommand(absl::StrCat(testing::BinaryDir(), "/tools/loom-push-weights ",
                                             "--rpc-timeout 60 --model ", other, " --address ",
                                             server.address()),
                                &out),
            0);
  EXPECT_TRUE(absl::StrContains(out, "rank 0: ")) << out;
  EXPECT_TRUE(absl::StrContains(out, "is not a parameter of LlamaForCausalLM")) << out;
  EXPECT_EQ(GreedyAll(server, ref), ref.greedy);
  EXPECT_EQ(server.Status().serving_weight_version(), 2u);
  // The same trainer group joins again (a fresh rendezvous each time) and pushes once more.
  ASSERT_EQ(testing::RunCommand(absl::StrCat(testing::BinaryDir(), "/tools/loom-push-weights ",
                                             "--rpc-timeout 60 --model ", Model(),
                                             " --address ", server.address()),
                                &out),
            0)
      << out;
  EXPECT_TRUE(absl::StrContains(out, "committed version 4")) << out;
  EXPECT_EQ(GreedyAll(server, ref), ref.greedy);
}

// NCCL groups need GPUs on both sides: on CPU ranks, or with a trainer without a GPU, the
// request is a clear error and the server keeps serving what it had.
TEST(WeightLifecycleTest, AnNcclTrainerGroupNeedsGpusAndFailsCleanlyWithout) {
  const HfReference ref = Reference();
  Server server(Serve("--tp 2"));
  ASSERT_SERVING(server);
  std::string out;
  const std::string push =
      absl::StrCat(testing::BinaryDir(), "/tools/loom-push-weights --rpc-timeout 60 --model ",
                   Model(), " --address ", server.address());
  ASSERT_NE(testing::RunCommand(push + " --backend nccl --device cuda:0", &out), 0);
  EXPECT_TRUE(absl::StrContains(out, "cuda:0")) << out;
  ASSERT_NE(testing::RunCommand(push + " --backend mpi", &out), 0);
  EXPECT_TRUE(absl::StrContains(out, "--backend must be gloo or nccl")) << out;
  CallResult on_cpu = Call(server, "init_weight_update_group",
                           {{"group", "g"}, {"world_size", 3}, {"rendezvous_id", "r1"},
                            {"backend", "nccl"}});
  EXPECT_FALSE(on_cpu.status.ok());
  EXPECT_TRUE(absl::StrContains(on_cpu.status.error_message(), "nccl needs GPU ranks"))
      << on_cpu.status.error_message();
  CallResult unknown = Call(server, "init_weight_update_group",
                            {{"group", "g"}, {"world_size", 3}, {"rendezvous_id", "r2"},
                             {"backend", 7}});
  EXPECT_FALSE(unknown.status.ok());
  EXPECT_TRUE(absl::StrContains(unknown.status.error_message(), "backend"))
      << unknown.status.error_message();
  // No group was left behind, and a Gloo push still goes through.
  EXPECT_FALSE(Call(server, "destroy_weight_update_group", {{"group", "g"}}).status.ok());
  EXPECT_EQ(server.Status().serving_weight_version(), 1u);
  ASSERT_EQ(testing::RunCommand(push, &out), 0) << out;
  EXPECT_TRUE(absl::StrContains(out, "committed version 2")) << out;
  EXPECT_EQ(GreedyAll(server, ref), ref.greedy);
}

TEST(WeightLifecycleTest, AStagedSwapDuringGenerationFailsNoRequest) {
  const HfReference ref = Reference();
  Server server(Serve("--tp 2 --load-format dummy"));
  ASSERT_SERVING(server);
  std::atomic<bool> stop{false};
  std::atomic<int64_t> committed_at{-1};  // steady-clock ns when commit_weights returned
  struct Done {
    Generated g;
    size_t prompt;
    int64_t started_ns;
  };
  std::mutex mu;
  std::vector<Done> done;
  auto now_ns = [] {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  };
  // Requests as long as the reference allows.
  const int tokens = static_cast<int>(ref.greedy[0].size());
  std::vector<std::thread> clients;
  for (int c = 0; c < 8; ++c) {
    clients.emplace_back([&, c] {
      for (int i = 0; !stop.load(); ++i) {
        const size_t p = (c + i) % ref.prompts.size();
        const int64_t started = now_ns();
        Generated g = Generate(server.stub(), ref.prompts[p], tokens);
        std::lock_guard<std::mutex> lock(mu);
        done.push_back({std::move(g), p, started});
      }
    });
  }
  // Some requests finish on the old weights before anything is staged, however slow the machine.
  for (int i = 0; i < 3000; ++i) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (done.size() >= 2) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CallResult staged = Call(server, "stage_weights", {{"source", {{"load_format", "auto"}}}});
  ASSERT_CALL_OK(staged);
  EXPECT_EQ(server.Status().staged_weight_version(), 2u);
  // One long request known to be streaming when the commit lands, whatever the clients' timing.
  std::atomic<bool> anchor_streaming{false};
  const int64_t anchor_started = now_ns();
  std::thread anchor([&] {
    Generated g = Generate(server.stub(), ref.prompts[0], 200,
                           [&anchor_streaming] { anchor_streaming = true; });
    std::lock_guard<std::mutex> lock(mu);
    done.push_back({std::move(g), 0, anchor_started});
  });
  for (int i = 0; i < 1000 && !anchor_streaming.load(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_TRUE(anchor_streaming.load()) << "the long request never started streaming";
  CallResult commit = Call(server, "commit_weights", {{"policy", "recompute"}});
  ASSERT_CALL_OK(commit);
  committed_at = now_ns();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  stop = true;
  for (std::thread& t : clients) t.join();
  anchor.join();

  int before = 0, after = 0;
  for (const Done& d : done) {
    ASSERT_TRUE(d.g.status.ok()) << d.g.status.error_message();
    ASSERT_TRUE(d.g.ids.size() == static_cast<size_t>(tokens) || d.g.ids.size() == 200u)
        << d.g.ids.size();
    for (size_t i = 1; i < d.g.versions.size(); ++i) {
      EXPECT_LE(d.g.versions[i - 1], d.g.versions[i]) << "versions go back within a response";
    }
    for (uint64_t v : d.g.versions) EXPECT_TRUE(v == 1 || v == 2) << v;
    if (d.started_ns > committed_at.load()) {
      ++after;
      for (uint64_t v : d.g.versions) EXPECT_EQ(v, 2u);
      const auto& want = ref.greedy[d.prompt];
      EXPECT_EQ(d.g.ids, std::vector<int32_t>(want.begin(), want.begin() + tokens));
    } else if (d.g.versions.back() == 1) {
      ++before;
    }
  }
  // A request in flight at the switch was recomputed: its tokens after the switch are exactly
  // the new model's greedy continuation of its prompt plus the tokens the old weights gave it
  // (old KV never met the new weights).
  int spanning = 0;
  for (const Done& d : done) {
    size_t old_tokens = 0, m = 0;
    for (; m < d.g.versions.size() && d.g.versions[m] == 1; ++m) old_tokens += d.g.sizes[m];
    if (old_tokens == 0 || old_tokens == d.g.ids.size() || spanning >= 4) continue;
    ++spanning;
    std::vector<int32_t> context = ref.prompts[d.prompt];
    context.insert(context.end(), d.g.ids.begin(), d.g.ids.begin() + old_tokens);
    Generated fresh =
        Generate(server.stub(), context, static_cast<int>(d.g.ids.size() - old_tokens));
    ASSERT_TRUE(fresh.status.ok());
    EXPECT_EQ(fresh.ids, std::vector<int32_t>(d.g.ids.begin() + old_tokens, d.g.ids.end()))
        << "after " << old_tokens << " old tokens";
  }
  for (const Done& d : done) {
    if (d.g.ids.size() != 200u) continue;
    EXPECT_EQ(d.g.versions.front(), 1u) << "the long request streamed before the commit";
    EXPECT_EQ(d.g.versions.back(), 2u) << "and ended on the new weights";
  }
  std::string seen;  // what the responses around the switch looked like, for a failure
  for (const Done& d : done) {
    if (d.started_ns > committed_at.load() || d.g.versions.back() == 1) continue;
    seen += " [";
    for (size_t m = 0; m < d.g.versions.size(); ++m) {
      seen += absl::StrCat(m ? "," : "", "v", d.g.versions[m], "x", d.g.sizes[m]);
    }
    seen += "]";
  }
  EXPECT_GT(spanning, 0) << "no request was in flight at the switch; " << done.size()
                         << " requests, those that started before the commit and ended on v2:"
                         << seen;
  EXPECT_GT(before, 0) << "no request finished on the old weights";
  EXPECT_GT(after, 0) << "no request started after the commit";
  EXPECT_EQ(server.Status().serving_weight_version(), 2u);
}

TEST(WeightLifecycleTest, TheAbortPolicyEndsInFlightRequestsWithAbort) {
  const HfReference ref = Reference();
  Server server(Serve("--tp 2 --load-format dummy"));
  ASSERT_SERVING(server);
  ASSERT_CALL_OK(Call(server, "stage_weights", {{"source", {{"load_format", "auto"}}}}));
  // Its first tokens have streamed, so it is in flight when the commit comes.
  Generated long_running;
  std::atomic<bool> streaming{false};
  std::thread client([&] {
    long_running = Generate(server.stub(), ref.prompts[0], 240, [&] { streaming = true; });
  });
  while (!streaming.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_CALL_OK(Call(server, "commit_weights", {{"policy", "abort"}}));
  client.join();
  ASSERT_TRUE(long_running.status.ok()) << long_running.status.error_message();
  EXPECT_EQ(long_running.finish_reason, "abort");
  EXPECT_LT(long_running.ids.size(), 240u);
  EXPECT_EQ(GreedyAll(server, ref), ref.greedy);
}

// A copy of the fixture model whose safetensors is truncated or has a tensor of another shape.
std::string BrokenCopy(const std::string& how) {
  const std::string dir = testing::MakeTempDir("loom-broken");
  for (const char* f : {"config.json", "generation_config.json"}) {
    std::filesystem::copy_file(absl::StrCat(Model(), "/", f), absl::StrCat(dir, "/", f));
  }
  const std::string src = Model() + "/model.safetensors", dst = dir + "/model.safetensors";
  if (how == "truncated") {
    std::filesystem::copy_file(src, dst);
    std::filesystem::resize_file(dst, std::filesystem::file_size(src) - 1000);
  } else {
    auto ckpt = Checkpoint::Open(Model());
    std::vector<std::pair<std::string, Tensor>> tensors;
    for (const std::string& name : (*ckpt)->Names()) {
      Tensor t = *(*ckpt)->Get(name);
      if (name == "model.layers.1.mlp.up_proj.weight") {
        t = Tensor::Empty(t.dtype(), {t.size(0) / 2, t.size(1)});
      }
      tensors.emplace_back(name, t);
    }
    EXPECT_TRUE(WriteSafetensors(dst, tensors).ok());
  }
  return dir;
}

TEST(WeightLifecycleTest, BadSourcesFailClearlyAndChangeNothing) {
  const HfReference ref = Reference();
  Server server(Serve("--tp 2"));
  ASSERT_SERVING(server);
  const std::string truncated = BrokenCopy("truncated"), misshapen = BrokenCopy("shape");

  struct Case {
    std::string method;
    json args;
    std::string expect;  // in the error
  };
  const std::vector<Case> cases = {
      {"stage_weights", {{"source", {{"model", truncated}}}}, "model.safetensors"},
      {"stage_weights", {{"source", {{"model", misshapen}}}}, "model.layers.1.mlp.up_proj.weight"},
      {"stage_weights", {{"source", {{"model", "/nonexistent"}}}}, "/nonexistent"},
      {"update_config", {{"load_config", {{"model", testing::FixtureModelDir("qwen3")}}}},
       "architecture"},
      {"update_config", {{"cache_config", {{"block_size", 8}}}}, "cannot change at run time"},
      {"update_config", {{"load_config", {{"bogus", 1}}}}, "unknown key"},
      {"commit_weights", json::object(), "nothing is staged"},
      {"reload_weights", {{"mode", "sideways"}}, "mode"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.method + " " + c.args.dump());
    CallResult r = Call(server, c.method, c.args);
    EXPECT_FALSE(r.status.ok());
    EXPECT_TRUE(absl::StrContains(r.status.error_message(), c.expect)) << r.status.error_message();
  }
  // A reload (in place and staged) from a config pointing at a broken checkpoint.
  for (const std::string& dir : {truncated, misshapen}) {
    ASSERT_CALL_OK(Call(server, "update_config", {{"load_config", {{"model", dir}}}}));
    for (const char* mode : {"in_place", "staged"}) {
      SCOPED_TRACE(absl::StrCat(dir, " ", mode));
      CallResult r = Call(server, "reload_weights", {{"mode", mode}});
      EXPECT_FALSE(r.status.ok());
      EXPECT_TRUE(absl::StrContains(r.status.error_message(), "rank 0")) << r.status.error_message();
      EXPECT_EQ(GreedyAll(server, ref), ref.greedy);
    }
  }
  // One rank's files broken, the other's fine: the call names the failing rank and its file,
  // and the healthy rank does not switch either.
  const std::string state = testing::MakeTempDir("loom-half-broken") + "/state";
  ASSERT_CALL_OK(Call(server, "save_sharded_state", {{"path", state}}));
  const std::string rank1 = state + "/model-rank-1-part-0.safetensors";
  std::filesystem::resize_file(rank1, std::filesystem::file_size(rank1) / 2);
  CallResult half =
      Call(server, "stage_weights",
           {{"source", {{"model", state}, {"load_format", "sharded_state"}}}});
  EXPECT_FALSE(half.status.ok());
  EXPECT_TRUE(absl::StrContains(half.status.error_message(), "rank 1: ")) << half.status.error_message();
  EXPECT_TRUE(absl::StrContains(half.status.error_message(), rank1)) << half.status.error_message();
  EXPECT_EQ(GreedyAll(server, ref), ref.greedy);

  auto status = server.Status();
  EXPECT_EQ(status.serving_weight_version(), 1u);
  EXPECT_EQ(status.staged_weight_version(), 0u);
  for (const auto& r : status.ranks()) {
    EXPECT_EQ(r.weight_state(), "ready");
    EXPECT_EQ(r.serving_version(), 1u);
    EXPECT_EQ(r.weight_source(), Model());
  }
}

TEST(WeightLifecycleTest, FiftyReloadsKeepEveryRanksMemoryFlat) {
  // Weights large enough (about 125 MB per rank) that a leaked copy of any of them, or a buffer
  // reallocated per reload, would show against the process's baseline.
  const std::string model = testing::MakeModel(
      "--layers 6 --hidden 1024 --heads 16 --kv-heads 4 --intermediate 4096 --vocab 16384");
  Server server(absl::StrCat("--model ", model, " --tp 2 --kv-cache-memory 4M"));
  ASSERT_SERVING(server);
  auto rss = [&] {
    std::vector<int64_t> out;
    // A commit frees the replaced set just after it answers; measure once that is done.
    CallResult d;
    for (int wait = 0; wait < 500; ++wait) {
      d = Call(server, "describe");
      bool releasing = false;
      for (const json& r : d.ranks) releasing = releasing || r["weights"].value("releasing", false);
      if (!releasing) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_TRUE(d.status.ok());
    for (const json& r : d.ranks) out.push_back(r["rss_bytes"].get<int64_t>());
    return out;
  };
  auto buffers = [&] {
    std::vector<std::string> out;
    for (const json& r : Call(server, "describe").ranks) out.push_back(r["weight_buffer_digest"]);
    return out;
  };
  // The first reloads settle the allocator; from then on nothing may grow.
  for (int i = 0; i < 4; ++i) {
    ASSERT_CALL_OK(Call(server, "reload_weights", {{"mode", i % 2 ? "in_place" : "staged"}}));
  }
  // RSS after every reload; flat means the last ten reloads sit where the first ten did
  // (medians, so the allocator's page-level jitter of a MB or two is not read as growth).
  std::vector<std::vector<int64_t>> samples;  // [reload][rank]
  for (int i = 0; i < 50; ++i) {
    // A staged reload switches to the staged set's buffers; an in-place one keeps them.
    const std::vector<std::string> before = buffers();
    ASSERT_CALL_OK(Call(server, "reload_weights", {{"mode", i % 2 ? "in_place" : "staged"}}));
    if (i % 2) {
      EXPECT_EQ(buffers(), before) << "an in-place reload moved the weight buffers";
    } else {
      EXPECT_NE(buffers(), before) << "a staged reload copied instead of switching sets";
    }
    samples.push_back(rss());
  }
  auto median = [&](size_t rank, size_t from) {
    std::vector<int64_t> v;
    for (size_t i = from; i < from + 10; ++i) v.push_back(samples[i][rank]);
    std::nth_element(v.begin(), v.begin() + 5, v.end());
    return v[5];
  };
  for (size_t r = 0; r < samples[0].size(); ++r) {
    const int64_t first = median(r, 0), last = median(r, samples.size() - 10);
    std::string series;
    for (const auto& sample : samples) absl::StrAppend(&series, sample[r] >> 20, " ");
    std::printf("rank %zu RSS (median of 10 reloads): %lld -> %lld bytes; MiB after each: %s\n",
                r, static_cast<long long>(first), static_cast<long long>(last), series.c_str());
    EXPECT_LE(std::abs(last - first), first / 50) << "rank " << r << " RSS MiB: " << series;
  }
  EXPECT_EQ(server.Status().serving_weight_version(), 55u);
}

}  // namespace
}  // namespace loom
