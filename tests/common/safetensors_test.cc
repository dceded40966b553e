#include "common/safetensors.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_paths.h"

namespace loom {
namespace {

namespace fs = std::filesystem;
using ::testing::AllOf;
using ::testing::HasSubstr;

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string LengthPrefix(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s;
}

// A file with exactly this header text followed by `data_bytes` zero bytes.
std::string WriteRaw(const std::string& dir, const std::string& header, size_t data_bytes) {
  const std::string path = dir + "/raw.safetensors";
  WriteBytes(path, LengthPrefix(header.size()) + header + std::string(data_bytes, '\0'));
  return path;
}

// Fills a tensor's bytes with a pattern that differs per tensor and per byte.
Tensor Patterned(DType dtype, std::vector<int64_t> shape, int seed) {
  Tensor t = Tensor::Empty(dtype, std::move(shape));
  auto* p = static_cast<unsigned char*>(t.raw_data());
  for (size_t i = 0; i < t.nbytes(); ++i) p[i] = static_cast<unsigned char>(seed * 31 + i * 7);
  return t;
}

std::string Bytes(const Tensor& t) {
  Tensor c = t.is_contiguous() ? t : t.Clone();
  return std::string(static_cast<const char*>(c.raw_data()), c.nbytes());
}

class SafetensorsTest : public ::testing::Test {
 protected:
  std::string dir_ = loom::testing::MakeTempDir("safetensors-test");
};

TEST_F(SafetensorsTest, RoundTripsEveryDtypeAndStridedViews) {
  Tensor wide = Patterned(DType::kF32, {4, 6}, 9);
  absl::StatusOr<Tensor> strided = wide.Slice(1, 1, 3);
  ASSERT_TRUE(strided.ok());
  ASSERT_FALSE(strided->is_contiguous());
  std::vector<std::pair<std::string, Tensor>> tensors = {
      {"f32", Patterned(DType::kF32, {2, 3}, 1)},
      {"bf16_odd", Patterned(DType::kBF16, {3}, 2)},  // 6 bytes: misaligns what follows if naive
      {"f16", Patterned(DType::kF16, {5, 1}, 3)},
      {"i32", Patterned(DType::kI32, {2, 2}, 4)},
      {"i64", Patterned(DType::kI64, {3}, 5)},
      {"scalar", Patterned(DType::kF32, {}, 6)},
      {"empty", Patterned(DType::kF16, {0, 4}, 7)},
      {"strided", *strided},
  };
  const std::string path = dir_ + "/model.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, tensors).ok());

  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  EXPECT_EQ((*file)->entries().size(), tensors.size());
  for (const auto& [name, src] : tensors) {
    SCOPED_TRACE(name);
    ASSERT_TRUE((*file)->Has(name));
    absl::StatusOr<Tensor> got = (*file)->Get(name);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->dtype(), src.dtype());
    EXPECT_EQ(got->shape(), src.shape());
    EXPECT_TRUE(got->is_contiguous());
    EXPECT_EQ(Bytes(*got), Bytes(src));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(got->raw_data()) % DTypeSize(got->dtype()), 0u);
  }
}

TEST_F(SafetensorsTest, WritesPaddedHeaderAndContiguousRanges) {
  const std::string path = dir_ + "/m.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, {{"b", Patterned(DType::kBF16, {3}, 1)},
                                      {"a", Patterned(DType::kF32, {2}, 2)}})
                  .ok());
  const std::string bytes = ReadBytes(path);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + n + 6 + 8);
  EXPECT_EQ(bytes[8], '{');
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok());
  uint64_t covered = 0;
  for (const SafetensorsEntry& e : (*file)->entries()) covered += e.end - e.begin;
  EXPECT_EQ(covered, 14u);
  // No temporary file is left beside the result.
  int files = 0;
  for (const auto& entry : fs::directory_iterator(dir_)) {
    (void)entry;
    ++files;
  }
  EXPECT_EQ(files, 1);
}

TEST_F(SafetensorsTest, ViewsOutliveTheFileObject) {
  const std::string path = dir_ + "/m.safetensors";
  Tensor src = Patterned(DType::kF32, {16}, 3);
  ASSERT_TRUE(WriteSafetensors(path, {{"w", src}}).ok());
  Tensor view;
  {
    auto file = SafetensorsFile::Open(path);
    ASSERT_TRUE(file.ok());
    view = *(*file)->Get("w");
  }
  EXPECT_EQ(Bytes(view), Bytes(src));
}

TEST_F(SafetensorsTest, RoundTripsMetadata) {
  const std::string path = dir_ + "/m.safetensors";
  std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "ünïcode"}};
  ASSERT_TRUE(WriteSafetensors(path, {{"w", Patterned(DType::kF32, {1}, 1)}}, metadata).ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok());
  EXPECT_EQ((*file)->metadata(), metadata);
}

TEST_F(SafetensorsTest, MissingTensorIsNotFoundNamingFileAndTensor) {
  const std::string path = dir_ + "/m.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, {{"w", Patterned(DType::kF32, {1}, 1)}}).ok());
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok());
  EXPECT_FALSE((*file)->Has("nope"));
  absl::StatusOr<Tensor> t = (*file)->Get("nope");
  EXPECT_TRUE(absl::IsNotFound(t.status()));
  EXPECT_THAT(t.status().message(), AllOf(HasSubstr(path), HasSubstr("\"nope\"")));
}

TEST_F(SafetensorsTest, UnalignedTensorIsReturnedAsAlignedCopy) {
  // "a" (F32) starts 2 bytes into the data region, after a one-element BF16.
  const std::string header = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[2,6]},)"
                             R"("b":{"dtype":"BF16","shape":[1],"data_offsets":[0,2]}})";
  std::string padded = header + std::string((8 - header.size() % 8) % 8, ' ');
  float value = 1.5f;
  std::string data(6, '\0');
  std::memcpy(data.data() + 2, &value, 4);
  const std::string path = dir_ + "/u.safetensors";
  WriteBytes(path, LengthPrefix(padded.size()) + padded + data);
  auto file = SafetensorsFile::Open(path);
  ASSERT_TRUE(file.ok()) << file.status();
  absl::StatusOr<Tensor> a = (*file)->Get("a");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a->raw_data()) % 4, 0u);
  EXPECT_EQ(a->data<float>()[0], 1.5f);
}

TEST_F(SafetensorsTest, WriterRejectsDuplicateAndReservedNames) {
  const std::string path = dir_ + "/m.safetensors";
  Tensor t = Patterned(DType::kF32, {1}, 1);
  absl::Status dup = WriteSafetensors(path, {{"w", t}, {"w", t}});
  EXPECT_THAT(dup.message(), AllOf(HasSubstr(path), HasSubstr("\"w\" given twice")));
  absl::Status reserved = WriteSafetensors(path, {{"__metadata__", t}});
  EXPECT_THAT(reserved.message(), HasSubstr("reserved"));
  absl::Status undefined = WriteSafetensors(path, {{"u", Tensor()}});
  EXPECT_THAT(undefined.message(), HasSubstr("undefined"));
  EXPECT_FALSE(fs::exists(path));
}

TEST_F(SafetensorsTest, WriterReportsUnwritablePath) {
  const std::string path = dir_ + "/no/such/dir/m.safetensors";
  absl::Status s = WriteSafetensors(path, {{"w", Patterned(DType::kF32, {1}, 1)}});
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr(path));
}

TEST_F(SafetensorsTest, WriterReportsAFileSystemThatRefusesWrites) {
  // /proc refuses new files even for root, which CI runs as.
  const std::string path = "/proc/self/m.safetensors";
  absl::Status s = WriteSafetensors(path, {{"w", Patterned(DType::kF32, {1}, 1)}});
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr(path));
}

TEST_F(SafetensorsTest, WriterFailureLeavesNoTemporaryFile) {
  // A directory in the way makes the final rename fail, even for root.
  const std::string path = dir_ + "/taken";
  fs::create_directory(path);
  absl::Status s = WriteSafetensors(path, {{"w", Patterned(DType::kF32, {4}, 1)}});
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(s.message(), AllOf(HasSubstr(path), HasSubstr("rename")));
  int entries = 0;
  for (const auto& entry : fs::directory_iterator(dir_)) {
    (void)entry;
    ++entries;
  }
  EXPECT_EQ(entries, 1);  // only the directory; the temporary file was removed
}

// ---- Header defects: each is refused with a message naming the file and the problem. ----

struct Defect {
  const char* label;
  std::string header;
  size_t data_bytes;
  std::vector<std::string> expect;
};

class SafetensorsDefectTest : public ::testing::TestWithParam<Defect> {};

TEST_P(SafetensorsDefectTest, IsRefusedWithSpecificMessage) {
  const Defect& d = GetParam();
  const std::string dir = loom::testing::MakeTempDir("safetensors-defect");
  const std::string path = WriteRaw(dir, d.header, d.data_bytes);
  absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
  ASSERT_FALSE(file.ok()) << d.label;
  EXPECT_THAT(file.status().message(), HasSubstr(path + ": "));
  for (const std::string& e : d.expect) EXPECT_THAT(file.status().message(), HasSubstr(e));
}

std::string Entry(const std::string& dtype, const std::string& shape, const std::string& offs) {
  return R"({"dtype":")" + dtype + R"(","shape":)" + shape + R"(,"data_offsets":)" + offs + "}";
}

INSTANTIATE_TEST_SUITE_P(
    Defects, SafetensorsDefectTest,
    ::testing::Values(
        Defect{"malformed", R"({"a": {"dtype": )", 0, {"not valid JSON"}},
        Defect{"array header", "[1, 2]", 0, {"not a JSON object"}},
        Defect{"entry not object", R"({"a": 3})", 0, {"tensor \"a\"", "not a JSON object"}},
        Defect{"missing dtype",
               R"({"a": {"shape": [1], "data_offsets": [0, 4]}})",
               4,
               {"tensor \"a\"", "\"dtype\""}},
        Defect{"dtype not string",
               R"({"a": )" + Entry("F32", "[1]", "[0,4]").replace(9, 5, "7") + "}",
               4,
               {"tensor \"a\"", "\"dtype\""}},
        Defect{"unknown dtype",
               R"({"a": )" + Entry("F64", "[1]", "[0,8]") + "}",
               8,
               {"tensor \"a\"", "unsupported dtype \"F64\""}},
        Defect{"shape not array",
               R"({"a": )" + Entry("F32", "4", "[0,16]") + "}",
               16,
               {"tensor \"a\"", "\"shape\""}},
        Defect{"negative dim",
               R"({"a": )" + Entry("F32", "[-1, 2]", "[0,8]") + "}",
               8,
               {"tensor \"a\"", "not a non-negative integer"}},
        Defect{"float dim",
               R"({"a": )" + Entry("F32", "[2.0]", "[0,8]") + "}",
               8,
               {"tensor \"a\"", "not a non-negative integer"}},
        Defect{"one offset",
               R"({"a": )" + Entry("F32", "[1]", "[4]") + "}",
               4,
               {"tensor \"a\"", "\"data_offsets\" must be two non-negative integers"}},
        Defect{"negative offset",
               R"({"a": )" + Entry("F32", "[1]", "[-4,0]") + "}",
               4,
               {"tensor \"a\"", "\"data_offsets\" must be two non-negative integers"}},
        Defect{"begin after end",
               R"({"a": )" + Entry("F32", "[0]", "[8,4]") + "}",
               8,
               {"tensor \"a\"", "begin after end"}},
        Defect{"size mismatch",
               R"({"a.weight": )" + Entry("F32", "[2,3]", "[0,20]") + "}",
               24,
               {"tensor \"a.weight\": shape [2, 3] x F32 needs 24 bytes but data_offsets span "
                "20"}},
        Defect{"shape overflow",
               R"({"a": )" + Entry("I64", "[4294967296, 4294967296]", "[0,8]") + "}",
               8,
               {"tensor \"a\"", "more than 2^63"}},
        Defect{"zero dim hides overflow",
               R"({"a": )" + Entry("I64", "[0, 4294967296, 4294967296]", "[0,0]") + "}",
               0,
               {"tensor \"a\"", "more than 2^63"}},
        Defect{"past data region",
               R"({"a": )" + Entry("F32", "[2]", "[0,8]") + "}",
               4,
               {"tensor \"a\"", "extend past the data region of 4 bytes"}},
        Defect{"overlap",
               R"({"a": )" + Entry("F32", "[2]", "[0,8]") + R"(, "b": )" +
                   Entry("F32", "[2]", "[4,12]") + "}",
               12,
               {"tensor \"b\"", "overlap tensor \"a\""}},
        Defect{"nested overlap",
               R"({"a": )" + Entry("F32", "[4]", "[0,16]") + R"(, "b": )" +
                   Entry("F32", "[1]", "[4,8]") + R"(, "c": )" + Entry("F32", "[1]", "[8,12]") +
                   "}",
               16,
               {"overlap tensor \"a\""}},
        Defect{"metadata not object",
               R"({"__metadata__": [1]})",
               0,
               {"\"__metadata__\" is not a JSON object"}},
        Defect{"metadata value not string",
               R"({"__metadata__": {"k": 1}})",
               0,
               {"\"__metadata__\" value for \"k\" is not a string"}}),
    [](const ::testing::TestParamInfo<Defect>& info) {
      std::string n = info.param.label;
      for (char& c : n) {
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      }
      return n;
    });

TEST_F(SafetensorsTest, RefusesFileShorterThanLengthField) {
  const std::string path = dir_ + "/short.safetensors";
  WriteBytes(path, "abc");
  auto file = SafetensorsFile::Open(path);
  ASSERT_FALSE(file.ok());
  EXPECT_THAT(file.status().message(),
              AllOf(HasSubstr(path), HasSubstr("3 bytes, shorter than the 8-byte")));
}

TEST_F(SafetensorsTest, RefusesHeaderLengthPastEndOfFile) {
  const std::string path = dir_ + "/long.safetensors";
  WriteBytes(path, LengthPrefix(1000) + "{}");
  auto file = SafetensorsFile::Open(path);
  ASSERT_FALSE(file.ok());
  EXPECT_THAT(file.status().message(),
              AllOf(HasSubstr(path), HasSubstr("header length 1000 exceeds the 2 bytes")));
}

TEST_F(SafetensorsTest, RefusesHeaderLengthOverBound) {
  // A sparse file large enough that only the 100 MB bound can refuse the length.
  const std::string path = dir_ + "/huge.safetensors";
  const uint64_t n = 100ull * 1024 * 1024 + 1;
  WriteBytes(path, LengthPrefix(n));
  fs::resize_file(path, n + 8);
  auto file = SafetensorsFile::Open(path);
  ASSERT_FALSE(file.ok());
  EXPECT_THAT(file.status().message(),
              AllOf(HasSubstr(path), HasSubstr("exceeds the 104857600-byte bound")));
}

TEST_F(SafetensorsTest, RefusesTruncatedFile) {
  const std::string path = dir_ + "/m.safetensors";
  ASSERT_TRUE(WriteSafetensors(path, {{"w", Patterned(DType::kF32, {8}, 1)}}).ok());
  fs::resize_file(path, fs::file_size(path) - 5);
  auto file = SafetensorsFile::Open(path);
  ASSERT_FALSE(file.ok());
  EXPECT_THAT(file.status().message(),
              AllOf(HasSubstr(path), HasSubstr("tensor \"w\""), HasSubstr("past the data region")));
}

TEST_F(SafetensorsTest, MissingFileIsNotFoundNamingIt) {
  const std::string path = dir_ + "/absent.safetensors";
  auto file = SafetensorsFile::Open(path);
  EXPECT_TRUE(absl::IsNotFound(file.status()));
  EXPECT_THAT(file.status().message(), HasSubstr(path));
}

// Random corruption of a valid file must give a clean error or a file whose every tensor can be
// read; never a crash or an out-of-bounds read (this runs under AddressSanitizer in CI).
TEST_F(SafetensorsTest, SurvivesRandomCorruption) {
  const std::string good_path = dir_ + "/good.safetensors";
  ASSERT_TRUE(WriteSafetensors(good_path,
                               {{"model.embed.weight", Patterned(DType::kBF16, {7, 3}, 1)},
                                {"model.norm.weight", Patterned(DType::kF32, {5}, 2)},
                                {"lm_head.bias", Patterned(DType::kF16, {3}, 3)},
                                {"ids", Patterned(DType::kI64, {2}, 4)}},
                               {{"format", "pt"}})
                  .ok());
  const std::string good = ReadBytes(good_path);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | static_cast<unsigned char>(good[i]);
  const std::string path = dir_ + "/bad.safetensors";
  std::mt19937_64 rng(20240601);
  int opened = 0;
  for (int iter = 0; iter < 2000; ++iter) {
    std::string bytes = good;
    switch (iter % 4) {
      case 0:  // a few random bytes anywhere in the length field and header
      case 1: {
        int flips = 1 + static_cast<int>(rng() % 4);
        for (int f = 0; f < flips; ++f) {
          size_t pos = rng() % (8 + header_len);
          bytes[pos] = static_cast<char>(rng() & 0xff);
        }
        break;
      }
      case 2:  // digits and JSON punctuation, which keep the header parseable more often
        for (int f = 0; f < 2; ++f) {
          static const char kChars[] = "0123456789[]{},:\"- ";
          size_t pos = 8 + rng() % header_len;
          bytes[pos] = kChars[rng() % (sizeof(kChars) - 1)];
        }
        break;
      case 3:  // truncation anywhere
        bytes.resize(rng() % bytes.size());
        break;
    }
    WriteBytes(path, bytes);
    absl::StatusOr<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(path);
    if (!file.ok()) {
      EXPECT_THAT(file.status().message(), HasSubstr(path));
      continue;
    }
    ++opened;
    for (const SafetensorsEntry& e : (*file)->entries()) {
      absl::StatusOr<Tensor> t = (*file)->Get(e.name);
      ASSERT_TRUE(t.ok()) << t.status();
      const auto* p = static_cast<const unsigned char*>(t->raw_data());
      unsigned sum = 0;
      for (size_t i = 0; i < t->nbytes(); ++i) sum += p[i];
      (void)sum;
    }
  }
  RecordProperty("opened", opened);
  EXPECT_GT(opened, 0);  // some corruptions (e.g. of data bytes or names) still parse
}

// ---- Checkpoints: directories of one or more files. ----

class CheckpointTest : public SafetensorsTest {
 protected:
  void WriteIndex(const std::string& weight_map_json) {
    WriteBytes(dir_ + "/model.safetensors.index.json",
               R"({"metadata": {"total_size": 0}, "weight_map": )" + weight_map_json + "}");
  }
};

TEST_F(CheckpointTest, OpensShardedCheckpointThroughIndex) {
  Tensor a = Patterned(DType::kF32, {2}, 1), b = Patterned(DType::kBF16, {3}, 2),
         c = Patterned(DType::kI32, {1}, 3);
  ASSERT_TRUE(
      WriteSafetensors(dir_ + "/model-00001-of-00002.safetensors", {{"a", a}, {"b", b}}).ok());
  ASSERT_TRUE(WriteSafetensors(dir_ + "/model-00002-of-00002.safetensors", {{"c", c}}).ok());
  // A stray file the index does not list is not opened.
  WriteBytes(dir_ + "/stray.safetensors", "garbage");
  WriteIndex(R"({"a": "model-00001-of-00002.safetensors", "b": "model-00001-of-00002.safetensors",
                 "c": "model-00002-of-00002.safetensors"})");
  auto ckpt = Checkpoint::Open(dir_);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ((*ckpt)->Names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_TRUE((*ckpt)->Has("c"));
  EXPECT_FALSE((*ckpt)->Has("d"));
  EXPECT_EQ(Bytes(*(*ckpt)->Get("b")), Bytes(b));
  EXPECT_EQ(Bytes(*(*ckpt)->Get("c")), Bytes(c));
  EXPECT_EQ((*ckpt)->FileOf("c"), dir_ + "/model-00002-of-00002.safetensors");
  EXPECT_EQ((*ckpt)->FileOf("d"), "");
  absl::StatusOr<Tensor> missing = (*ckpt)->Get("d");
  EXPECT_TRUE(absl::IsNotFound(missing.status()));
  EXPECT_THAT(missing.status().message(), AllOf(HasSubstr(dir_), HasSubstr("\"d\"")));
}

TEST_F(CheckpointTest, WithoutIndexOpensEverySafetensorsFile) {
  ASSERT_TRUE(
      WriteSafetensors(dir_ + "/b.safetensors", {{"y", Patterned(DType::kF32, {1}, 1)}}).ok());
  ASSERT_TRUE(
      WriteSafetensors(dir_ + "/a.safetensors", {{"x", Patterned(DType::kF32, {1}, 2)}}).ok());
  WriteBytes(dir_ + "/config.json", "{}");
  auto ckpt = Checkpoint::Open(dir_);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  EXPECT_EQ((*ckpt)->Names(), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ((*ckpt)->FileOf("x"), dir_ + "/a.safetensors");
}

TEST_F(CheckpointTest, MissingDirectoryIsAnErrorNamingIt) {
  auto ckpt = Checkpoint::Open(dir_ + "/nowhere");
  EXPECT_TRUE(absl::IsNotFound(ckpt.status()));
  EXPECT_THAT(ckpt.status().message(), HasSubstr(dir_ + "/nowhere"));
}

TEST_F(CheckpointTest, DirectoryWithoutSafetensorsIsNotFound) {
  WriteBytes(dir_ + "/config.json", "{}");
  auto ckpt = Checkpoint::Open(dir_);
  EXPECT_TRUE(absl::IsNotFound(ckpt.status()));
  EXPECT_THAT(ckpt.status().message(), HasSubstr("no .safetensors files in " + dir_));
}

TEST_F(CheckpointTest, IndexNamingMissingShardIsAnError) {
  ASSERT_TRUE(
      WriteSafetensors(dir_ + "/s1.safetensors", {{"a", Patterned(DType::kF32, {1}, 1)}}).ok());
  WriteIndex(R"({"a": "s1.safetensors", "b": "s2.safetensors"})");
  auto ckpt = Checkpoint::Open(dir_);
  ASSERT_FALSE(ckpt.ok());
  EXPECT_THAT(ckpt.status().message(),
              AllOf(HasSubstr("model.safetensors.index.json"), HasSubstr("\"s2.safetensors\""),
                    HasSubstr("missing")));
}

TEST_F(CheckpointTest, IndexPointingAtWrongShardIsAnError) {
  ASSERT_TRUE(
      WriteSafetensors(dir_ + "/s1.safetensors", {{"a", Patterned(DType::kF32, {1}, 1)}}).ok());
  WriteIndex(R"({"a": "s1.safetensors", "b": "s1.safetensors"})");
  auto ckpt = Checkpoint::Open(dir_);
  ASSERT_FALSE(ckpt.ok());
  EXPECT_THAT(ckpt.status().message(),
              AllOf(HasSubstr("tensor \"b\""), HasSubstr(dir_ + "/s1.safetensors")));
}

TEST_F(CheckpointTest, IndexShardOutsideDirectoryIsRefused) {
  WriteIndex(R"({"a": "../elsewhere.safetensors"})");
  auto ckpt = Checkpoint::Open(dir_);
  ASSERT_FALSE(ckpt.ok());
  EXPECT_THAT(ckpt.status().message(), HasSubstr("not a plain file name"));
}

TEST_F(CheckpointTest, MalformedIndexIsAnErrorNamingIt) {
  WriteIndex("[1]");
  auto ckpt = Checkpoint::Open(dir_);
  ASSERT_FALSE(ckpt.ok());
  EXPECT_THAT(ckpt.status().message(),
              AllOf(HasSubstr("model.safetensors.index.json"), HasSubstr("weight_map")));
}

TEST_F(CheckpointTest, DuplicateNameAcrossFilesNamesBothFiles) {
  ASSERT_TRUE(
      WriteSafetensors(dir_ + "/a.safetensors", {{"w", Patterned(DType::kF32, {1}, 1)}}).ok());
  ASSERT_TRUE(
      WriteSafetensors(dir_ + "/b.safetensors", {{"w", Patterned(DType::kF32, {1}, 2)}}).ok());
  auto ckpt = Checkpoint::Open(dir_);
  ASSERT_FALSE(ckpt.ok());
  EXPECT_THAT(ckpt.status().message(),
              AllOf(HasSubstr("tensor \"w\""), HasSubstr(dir_ + "/a.safetensors"),
                    HasSubstr(dir_ + "/b.safetensors")));
}

TEST_F(CheckpointTest, CorruptShardErrorNamesTheShard) {
  WriteBytes(dir_ + "/model.safetensors", LengthPrefix(2) + "{]");
  auto ckpt = Checkpoint::Open(dir_);
  ASSERT_FALSE(ckpt.ok());
  EXPECT_THAT(ckpt.status().message(),
              AllOf(HasSubstr(dir_ + "/model.safetensors"), HasSubstr("not valid JSON")));
}

}  // namespace
}  // namespace loom
