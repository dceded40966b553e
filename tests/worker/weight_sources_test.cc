// The weight sources hand each rank exactly its region of every parameter: `auto` reads only the
// region's bytes from an HF checkpoint, `dummy` generates the same full model whatever the cut,
// and `sharded_state` loads back what each rank saved, at the saved TP size from the rank's own
// files only and at any other size by reassembling the pieces. Bad inputs fail Check (or Open)
// with errors naming the file and the tensor.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "absl/strings/str_cat.h"
#include "common/safetensors.h"
#include "gmock/gmock.h"
#include "nlohmann/json.hpp"
#include "tests/test_paths.h"
#include "worker/loader/weight_source.h"

namespace loom {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr char kEmbed[] = "model.embed_tokens.weight";           // [10, 6], vocab-like
constexpr char kQ[] = "model.layers.0.self_attn.q_proj.weight";  // [8, 6] bf16, column-parallel
constexpr char kDown[] = "model.layers.0.mlp.down_proj.weight";  // [6, 8], row-parallel
constexpr char kNorm[] = "model.norm.weight";                    // [6], replicated

ParameterInfo Param(const std::string& name, std::vector<int64_t> shape, int dim = -1,
                    int64_t start = 0, int64_t length = 0) {
  return ParameterInfo{name, std::move(shape), dim, start, length};
}

// Distinct, exactly representable values (in bf16 too), different in every tensor.
Tensor Ramp(std::vector<int64_t> shape, DType dtype, float base) {
  Tensor f = Tensor::Empty(DType::kF32, shape);
  for (int64_t i = 0; i < f.numel(); ++i) f.data<float>()[i] = base + static_cast<float>(i);
  return *f.To(dtype);
}

// The reference model: every parameter whole.
std::map<std::string, Tensor> Reference() {
  return {{kEmbed, Ramp({10, 6}, DType::kF32, 1000)},
          {kQ, Ramp({8, 6}, DType::kBF16, -100)},
          {kDown, Ramp({6, 8}, DType::kF32, 2000)},
          {kNorm, Ramp({6}, DType::kF32, 5000)}};
}

// Range r of n cut into tp ranges of ceil(n / tp) (the last one short, or empty).
std::pair<int64_t, int64_t> Range(int64_t n, int tp, int r) {
  const int64_t chunk = (n + tp - 1) / tp;
  const int64_t start = std::min<int64_t>(r * chunk, n);
  return {start, std::min<int64_t>(chunk, n - start)};
}

// What rank r of tp holds: the vocab and q rows, the down_proj columns, the norm whole.
std::vector<ParameterInfo> Regions(int tp, int r) {
  auto [e0, el] = Range(10, tp, r);
  auto [q0, ql] = Range(8, tp, r);
  auto [d0, dl] = Range(8, tp, r);
  return {Param(kEmbed, {10, 6}, 0, e0, el), Param(kQ, {8, 6}, 0, q0, ql),
          Param(kDown, {6, 8}, 1, d0, dl), Param(kNorm, {6})};
}

// `full`'s part for region p (a strided view for a split along dim 1).
Tensor Part(const Tensor& full, const ParameterInfo& p) {
  return p.split_dim < 0 ? full : *full.Slice(p.split_dim, p.start, p.length);
}

void ExpectSameTensor(const Tensor& got, const Tensor& want, const std::string& what) {
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  ASSERT_EQ(got.shape(), want.shape()) << what;
  const Tensor a = got.Clone(), b = want.Clone();
  EXPECT_EQ(std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()), 0) << what;
}

int64_t RegionBytes(const std::vector<ParameterInfo>& ps) {
  const std::map<std::string, Tensor> ref = Reference();
  int64_t n = 0;
  for (const ParameterInfo& p : ps) n += static_cast<int64_t>(Part(ref.at(p.name), p).nbytes());
  return n;
}

// An HF-layout model directory: the reference in two files, plus the rotary buffer HF saves.
std::string MakeCheckpoint(const std::map<std::string, Tensor>& extra = {}) {
  const std::string dir = testing::MakeTempDir("loom-ws");
  const std::map<std::string, Tensor> ref = Reference();
  EXPECT_TRUE(WriteSafetensors(dir + "/model-00001-of-00002.safetensors",
                               {{kEmbed, ref.at(kEmbed)}, {kQ, ref.at(kQ)}})
                  .ok());
  std::vector<std::pair<std::string, Tensor>> second = {
      {kDown, ref.at(kDown)},
      {kNorm, ref.at(kNorm)},
      {"model.layers.0.self_attn.rotary_emb.inv_freq", Ramp({3}, DType::kF32, 0)}};
  for (const auto& [name, t] : extra) second.emplace_back(name, t);
  EXPECT_TRUE(WriteSafetensors(dir + "/model-00002-of-00002.safetensors", second).ok());
  std::ofstream(dir + "/config.json") << "{\"architectures\": [\"LlamaForCausalLM\"]}\n";
  return dir;
}

// ---- auto ----

TEST(SafetensorsWeightSourceTest, ReadsExactlyTheRegionBytes) {
  const std::string dir = MakeCheckpoint();
  auto ckpt = Checkpoint::Open(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  for (int tp : {1, 2, 4}) {
    for (int r = 0; r < tp; ++r) {
      auto source = OpenSafetensorsSource(dir);
      ASSERT_TRUE(source.ok()) << source.status();
      const std::vector<ParameterInfo> regions = Regions(tp, r);
      ASSERT_TRUE((*source)->Check(regions, /*tied=*/false).ok());
      for (const ParameterInfo& p : regions) {
        auto got = (*source)->Read(p);
        ASSERT_TRUE(got.ok()) << got.status();
        ExpectSameTensor(*got, Part(*(*ckpt)->Get(p.name), p),
                         absl::StrCat(p.name, " tp ", tp, " rank ", r));
      }
      EXPECT_EQ((*source)->bytes_read(), RegionBytes(regions)) << "tp " << tp << " rank " << r;
      EXPECT_EQ((*source)->files_opened(),
                (std::vector<std::string>{dir + "/model-00001-of-00002.safetensors",
                                          dir + "/model-00002-of-00002.safetensors"}));
    }
  }
}

TEST(SafetensorsWeightSourceTest, CheckNamesMissingMisshapenAndUnknownTensors) {
  const std::string dir = MakeCheckpoint({{"lm_head.weight", Ramp({10, 6}, DType::kF32, 7)}});
  auto source = OpenSafetensorsSource(dir);
  ASSERT_TRUE(source.ok()) << source.status();
  std::vector<ParameterInfo> params = Regions(1, 0);

  // lm_head.weight is only acceptable beside tied embeddings.
  absl::Status s = (*source)->Check(params, /*tied=*/false);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("unexpected tensor lm_head.weight"));
  EXPECT_THAT(s.message(), HasSubstr(dir + "/model-00002-of-00002.safetensors"));
  EXPECT_TRUE((*source)->Check(params, /*tied=*/true).ok());

  params.push_back(Param("model.layers.0.mlp.up_proj.weight", {8, 6}));
  s = (*source)->Check(params, true);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("model.layers.0.mlp.up_proj.weight"));
  EXPECT_THAT(s.message(), HasSubstr(dir));
  params.pop_back();

  params[0].shape = {11, 6};
  s = (*source)->Check(params, true);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr(dir + "/model-00001-of-00002.safetensors"));
  EXPECT_THAT(s.message(), HasSubstr(absl::StrCat(kEmbed, ": expected shape [11, 6]")));
  EXPECT_FALSE((*source)->Read(params[0]).ok());
  params[0].shape = {10, 6};

  params.erase(params.begin() + 2);  // the model does not know down_proj
  s = (*source)->Check(params, true);
  EXPECT_THAT(s.message(), HasSubstr(absl::StrCat("unexpected tensor ", kDown)));
  EXPECT_EQ((*source)->bytes_read(), 0);  // Check reads no tensor data
}

TEST(SafetensorsWeightSourceTest, RefusesIntegerTensorsAndTruncatedFiles) {
  const std::string dir = MakeCheckpoint({{"model.ids", Tensor::Empty(DType::kI32, {4})}});
  auto source = OpenSafetensorsSource(dir);
  ASSERT_TRUE(source.ok()) << source.status();
  std::vector<ParameterInfo> params = Regions(1, 0);
  params.push_back(Param("model.ids", {4}));
  absl::Status s = (*source)->Check(params, false);
  EXPECT_THAT(s.message(), HasSubstr("model.ids: expected a float tensor, got I32"));

  // Truncated after Open: the header still promises the bytes, the read finds the file short
  // (an error, not a SIGBUS from a mapping).
  const std::string second = dir + "/model-00002-of-00002.safetensors";
  fs::resize_file(second, fs::file_size(second) - 40);
  params.pop_back();
  auto norm = (*source)->Read(params[3]);
  EXPECT_EQ(norm.status().code(), absl::StatusCode::kDataLoss) << norm.status();
  EXPECT_THAT(norm.status().message(), HasSubstr(second));

  // Truncated before Open: refused when the headers are read.
  auto reopened = OpenSafetensorsSource(dir);
  EXPECT_EQ(reopened.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(reopened.status().message(), HasSubstr(second));
}

// ---- dummy ----

TEST(DummyWeightSourceTest, ValuesDoNotDependOnTheCut) {
  auto source = MakeDummySource(/*seed=*/7, /*range=*/0.5);
  for (const ParameterInfo& whole : {Param("w", {12, 10}), Param("b", {10})}) {
    auto full = source->Read(whole);
    ASSERT_TRUE(full.ok()) << full.status();
    ASSERT_EQ(full->shape(), whole.shape);
    for (int dim = 0; dim < static_cast<int>(whole.shape.size()); ++dim) {
      for (int tp : {2, 4}) {
        for (int r = 0; r < tp; ++r) {
          auto [start, length] = Range(whole.shape[dim], tp, r);
          const ParameterInfo p = Param(whole.name, whole.shape, dim, start, length);
          auto part = source->Read(p);
          ASSERT_TRUE(part.ok()) << part.status();
          ExpectSameTensor(*part, Part(*full, p),
                           absl::StrCat(whole.name, " dim ", dim, " tp ", tp, " rank ", r));
        }
      }
    }
  }
  EXPECT_EQ(source->bytes_read(), 0);
  EXPECT_TRUE(source->files_opened().empty());
  EXPECT_TRUE(source->Check({Param("anything", {3, 3})}, false).ok());
}

TEST(DummyWeightSourceTest, ValuesAreInRangeAndDifferByNameAndSeed) {
  constexpr double kRange = 1e-3;
  auto a = MakeDummySource(1, kRange), b = MakeDummySource(2, kRange);
  const Tensor w = *a->Read(Param("w", {64, 64}));
  const Tensor v = *a->Read(Param("v", {64, 64}));
  const Tensor w2 = *b->Read(Param("w", {64, 64}));
  const Tensor again = *MakeDummySource(1, kRange)->Read(Param("w", {64, 64}));
  ExpectSameTensor(again, w, "same seed and name");
  float max_abs = 0;
  double sum = 0;
  int same_name = 0, same_seed = 0;
  for (int64_t i = 0; i < w.numel(); ++i) {
    const float x = w.data<float>()[i];
    ASSERT_LE(std::fabs(x), static_cast<float>(kRange));
    max_abs = std::max(max_abs, std::fabs(x));
    sum += x;
    same_name += x == v.data<float>()[i];
    same_seed += x == w2.data<float>()[i];
  }
  EXPECT_GT(max_abs, 0.9 * kRange);             // spread over the range...
  EXPECT_LT(std::fabs(sum / w.numel()), 1e-4);  // ...and centred
  EXPECT_EQ(same_name, 0);
  EXPECT_EQ(same_seed, 0);
}

// ---- sharded state ----

// Saves what each rank of `tp` holds of the reference into `dir`; returns each rank's report.
std::vector<SaveReport> SaveAt(const std::string& dir, int tp, int64_t max_file_size = 0,
                               std::vector<int> ranks = {}) {
  const std::map<std::string, Tensor> ref = Reference();
  if (ranks.empty()) {
    for (int r = 0; r < tp; ++r) ranks.push_back(r);
  }
  std::vector<SaveReport> reports;
  for (int r : ranks) {
    std::vector<std::pair<ParameterInfo, Tensor>> parts;
    for (const ParameterInfo& p : Regions(tp, r)) parts.emplace_back(p, Part(ref.at(p.name), p));
    ShardedStateInfo info{r, tp, "/models/reference", 3, max_file_size};
    auto report = SaveShardedState(dir, parts, info);
    EXPECT_TRUE(report.ok()) << report.status();
    reports.push_back(report.ok() ? *report : SaveReport{});
  }
  return reports;
}

// Loads every rank of `tp` from `dir` and compares with the reference; returns the bytes read.
int64_t ExpectLoadsAt(const std::string& dir, int tp) {
  const std::map<std::string, Tensor> ref = Reference();
  int64_t total = 0;
  for (int r = 0; r < tp; ++r) {
    auto source = OpenShardedStateSource(dir, r, tp);
    EXPECT_TRUE(source.ok()) << source.status();
    if (!source.ok()) return -1;
    const std::vector<ParameterInfo> regions = Regions(tp, r);
    absl::Status s = (*source)->Check(regions, false);
    EXPECT_TRUE(s.ok()) << s;
    for (const ParameterInfo& p : regions) {
      auto got = (*source)->Read(p);
      EXPECT_TRUE(got.ok()) << got.status();
      if (got.ok()) {
        ExpectSameTensor(*got, Part(ref.at(p.name), p),
                         absl::StrCat(p.name, " tp ", tp, " rank ", r));
      }
    }
    // Every byte of the region is read once: no piece is read twice, replicated or not.
    EXPECT_EQ((*source)->bytes_read(), RegionBytes(regions)) << "tp " << tp << " rank " << r;
    total += (*source)->bytes_read();
  }
  return total;
}

TEST(ShardedStateTest, SameTpSizeReadsOnlyTheRanksOwnFiles) {
  const std::string dir = testing::MakeTempDir("loom-ss");
  const std::vector<SaveReport> reports = SaveAt(dir, 2);
  for (int r = 0; r < 2; ++r) {
    ASSERT_EQ(reports[r].files, std::vector<std::string>{
                                    absl::StrCat(dir, "/model-rank-", r, "-part-0.safetensors")});
    EXPECT_EQ(reports[r].bytes_written, static_cast<int64_t>(fs::file_size(reports[r].files[0])));
    auto source = OpenShardedStateSource(dir, r, 2);
    ASSERT_TRUE(source.ok()) << source.status();
    EXPECT_EQ((*source)->files_opened(), reports[r].files);
  }
  ExpectLoadsAt(dir, 2);
}

TEST(ShardedStateTest, ReshardsToOtherTpSizes) {
  const std::string dir = testing::MakeTempDir("loom-ss");
  SaveAt(dir, 2);
  for (int tp : {1, 3, 4}) {  // 3 cuts every range unevenly, 4 leaves the last vocab range short
    SCOPED_TRACE(absl::StrCat("tp ", tp));
    ExpectLoadsAt(dir, tp);
    auto source = OpenShardedStateSource(dir, 0, tp);
    ASSERT_TRUE(source.ok());
    EXPECT_EQ((*source)->files_opened().size(), 2u);  // every rank's header
  }
  // Saved at 4 (the last rank holds a one-row vocab range), loaded at 2 and 1.
  const std::string dir4 = testing::MakeTempDir("loom-ss");
  SaveAt(dir4, 4);
  ExpectLoadsAt(dir4, 2);
  ExpectLoadsAt(dir4, 1);
}

TEST(ShardedStateTest, MaxFileSizeSplitsFilesAndResaveRemovesStaleParts) {
  const std::string dir = testing::MakeTempDir("loom-ss");
  // Rank 0 of 2: embed 120 B, q 48 B, down 96 B, norm 24 B. At 100 B each file holds one (the
  // 120-byte part alone, being over the limit).
  const std::vector<SaveReport> reports = SaveAt(dir, 2, /*max_file_size=*/100);
  ASSERT_EQ(reports[0].files.size(), 4u);
  auto first = SafetensorsFile::Open(reports[0].files[0]);
  ASSERT_TRUE(first.ok());
  EXPECT_EQ((*first)->entries().size(), 1u);
  EXPECT_EQ((*first)->entries()[0].name, kEmbed);
  for (const std::string& f : reports[0].files) {
    auto file = SafetensorsFile::Open(f);
    ASSERT_TRUE(file.ok());
    int64_t bytes = 0;
    for (const SafetensorsEntry& e : (*file)->entries()) bytes += e.end - e.begin;
    EXPECT_TRUE(bytes <= 100 || (*file)->entries().size() == 1) << f;
  }
  EXPECT_EQ(ExpectLoadsAt(dir, 2), RegionBytes(Regions(2, 0)) + RegionBytes(Regions(2, 1)));
  ExpectLoadsAt(dir, 1);

  // Saving rank 0 again in one file removes its old parts, and only its own.
  SaveAt(dir, 2, 0, {0});
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  std::vector<std::string> want = {"model-rank-0-part-0.safetensors"};
  for (const std::string& f : reports[1].files) want.push_back(fs::path(f).filename());
  EXPECT_EQ(names, want);
  ExpectLoadsAt(dir, 2);
  ExpectLoadsAt(dir, 4);
}

TEST(ShardedStateTest, RecordsRegionsAndProvenanceInMetadata) {
  const std::string dir = testing::MakeTempDir("loom-ss");
  SaveAt(dir, 2);
  auto file = SafetensorsFile::Open(dir + "/model-rank-1-part-0.safetensors");
  ASSERT_TRUE(file.ok()) << file.status();
  const auto& m = (*file)->metadata();
  EXPECT_EQ(m.at("format"), "pt");
  EXPECT_EQ(m.at("loom.format"), "sharded_state");
  EXPECT_EQ(m.at("loom.tp_size"), "2");
  EXPECT_EQ(m.at("loom.rank"), "1");
  EXPECT_EQ(m.at("loom.source"), "/models/reference");
  EXPECT_EQ(m.at("loom.weight_version"), "3");
  const nlohmann::json regions = nlohmann::json::parse(m.at("loom.regions"));
  EXPECT_EQ(
      regions.at(kEmbed),
      nlohmann::json::parse(R"({"shape": [10, 6], "split_dim": 0, "start": 5, "length": 5})"));
  EXPECT_EQ(regions.at(kDown),
            nlohmann::json::parse(R"({"shape": [6, 8], "split_dim": 1, "start": 4, "length": 4})"));
  EXPECT_EQ(regions.at(kNorm).at("split_dim"), -1);
  // Tensors are stored under their HF names with their local shape, in their own dtype.
  EXPECT_EQ((*file)->Find(kDown)->shape, (std::vector<int64_t>{6, 4}));
  EXPECT_EQ((*file)->Find(kQ)->dtype, DType::kBF16);
}

TEST(ShardedStateTest, UncoveredRegionsAndMixedSavesAreErrors) {
  const std::string dir = testing::MakeTempDir("loom-ss");
  SaveAt(dir, 2, 0, {0});  // rank 1 never saved
  auto source = OpenShardedStateSource(dir, 0, 1);
  ASSERT_TRUE(source.ok()) << source.status();
  absl::Status s = (*source)->Check(Regions(1, 0), false);
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr(kEmbed));
  EXPECT_THAT(s.message(), HasSubstr("do not cover"));
  EXPECT_FALSE((*source)->Read(Regions(1, 0)[0]).ok());
  // Rank 0 of 4 needs only rows [0, 3) of the vocab, which rank 0 of 2 saved.
  auto quarter = OpenShardedStateSource(dir, 0, 4);
  ASSERT_TRUE(quarter.ok());
  EXPECT_TRUE((*quarter)->Read(Regions(4, 0)[0]).ok());

  std::vector<ParameterInfo> more = Regions(2, 0);
  more.push_back(Param("model.layers.0.mlp.up_proj.weight", {8, 6}));
  s = (*OpenShardedStateSource(dir, 0, 2))->Check(more, false);
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("model.layers.0.mlp.up_proj.weight"));
  more[0].shape = {12, 6};
  s = (*OpenShardedStateSource(dir, 0, 2))->Check(more, false);
  EXPECT_THAT(s.message(), HasSubstr(absl::StrCat(kEmbed, ": expected shape [12, 6]")));

  SaveAt(dir, 4);  // ranks 0-3 at 4 over rank 0 at 2: one consistent save again
  ExpectLoadsAt(dir, 4);
  ExpectLoadsAt(dir, 1);
  SaveAt(dir, 2, 0, {1});  // now rank 1 says tp 2 and ranks 0, 2, 3 say tp 4
  auto mixed = OpenShardedStateSource(dir, 0, 1);
  EXPECT_EQ(mixed.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(mixed.status().message(), HasSubstr("mixed sharded states"));

  const std::string empty = testing::MakeTempDir("loom-ss");
  auto none = OpenShardedStateSource(empty, 0, 1);
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(none.status().message(), HasSubstr(empty));
}

TEST(ShardedStateTest, BadFilesAreErrorsNamingTheFile) {
  const std::string dir = testing::MakeTempDir("loom-ss");
  const std::string path = dir + "/model-rank-0-part-0.safetensors";
  const std::map<std::string, Tensor> ref = Reference();
  std::map<std::string, std::string> meta = {{"loom.format", "sharded_state"},
                                             {"loom.tp_size", "1"},
                                             {"loom.rank", "0"},
                                             {"loom.num_parts", "1"},
                                             {"loom.regions", "{not json"}};
  const std::vector<std::pair<std::string, Tensor>> tensors = {{kNorm, ref.at(kNorm)}};
  auto open_error = [&]() {
    EXPECT_TRUE(WriteSafetensors(path, tensors, meta).ok());
    auto s = OpenShardedStateSource(dir, 0, 1);
    EXPECT_FALSE(s.ok());
    EXPECT_THAT(s.status().message(), HasSubstr(path));
    return std::string(s.status().message());
  };
  EXPECT_THAT(open_error(), HasSubstr("loom.regions"));
  meta["loom.regions"] = R"({"model.norm.weight": {"shape": [6], "split_dim": 0, "start": 4,
                             "length": 4}})";
  EXPECT_THAT(open_error(), HasSubstr("model.norm.weight"));  // [4, 8) is outside [6]
  meta["loom.regions"] = R"({"model.norm.weight": {"shape": [7], "split_dim": -1, "start": 0,
                             "length": 0}})";
  EXPECT_THAT(open_error(), HasSubstr("model.norm.weight"));  // stored [6], region says [7]
  meta["loom.regions"] = R"({"model.norm.weight": {"shape": [6], "split_dim": -1, "start": 0,
                             "length": 0}})";
  meta["loom.tp_size"] = "two";
  EXPECT_THAT(open_error(), HasSubstr("loom.tp_size"));
  meta["loom.tp_size"] = "1";
  meta.erase("loom.format");
  EXPECT_THAT(open_error(), HasSubstr("not a sharded-state file"));
  meta["loom.format"] = "sharded_state";
  ASSERT_TRUE(WriteSafetensors(path, tensors, meta).ok());
  ASSERT_TRUE(OpenShardedStateSource(dir, 0, 1).ok());
  fs::resize_file(path, fs::file_size(path) - 4);
  auto truncated = OpenShardedStateSource(dir, 0, 1);
  EXPECT_EQ(truncated.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(truncated.status().message(), HasSubstr(path));
}

TEST(ShardedStateTest, CopyNonWeightFilesMakesACompleteModelDirectory) {
  const std::string model = MakeCheckpoint();
  std::ofstream(model + "/tokenizer.json") << "{}";
  std::ofstream(model + "/model.safetensors.index.json") << "{}";
  fs::create_directory(model + "/subdir");
  const std::string out = testing::MakeTempDir("loom-ss") + "/state";
  ASSERT_TRUE(CopyNonWeightFiles(model, out).ok());
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(out)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"config.json", "tokenizer.json"}));
  std::ifstream in(out + "/config.json");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_THAT(text, HasSubstr("LlamaForCausalLM"));
  absl::Status self = CopyNonWeightFiles(model, model + "/.");
  EXPECT_EQ(self.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(self.message(), HasSubstr("onto itself"));
}

}  // namespace
}  // namespace loom
