// Tokenizer throughput on one core: encode and decode MB/s and tokens/s per tokenizer, with
// two baselines measured in the same run on the same text: a memchr line split (the floor any
// text pass pays) and the GPT-2 pre-tokenizer regex alone (PCRE2 JIT, what every byte-level
// encode pays before BPE). Every number is the median of --repeats runs.
//
//   loom-bench-tokenizer [--text FILE] [--repeats N] NAME=TOKENIZER_JSON ...
//
// The whole text is encoded as one string (as a long prompt is) and its ids decoded at once.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "common/flags.h"
#include "controller/tokenizer/regex.h"
#include "controller/tokenizer/tokenizer.h"

namespace {

using Clock = std::chrono::steady_clock;

double MedianSeconds(int repeats, const std::function<void()>& body) {
  std::vector<double> seconds;
  for (int i = 0; i < repeats; ++i) {
    const auto start = Clock::now();
    body();
    seconds.push_back(std::chrono::duration<double>(Clock::now() - start).count());
  }
  std::sort(seconds.begin(), seconds.end());
  return seconds[seconds.size() / 2];
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

int Usage() {
  std::fprintf(stderr,
               "usage: loom-bench-tokenizer [--text FILE] [--repeats N] NAME=TOKENIZER_JSON ...\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  absl::StatusOr<loom::cli::Flags> flags =
      loom::cli::Flags::Parse(argc, argv, 1, {{"text"}, {"repeats"}});
  if (!flags.ok()) {
    std::fprintf(stderr, "loom-bench-tokenizer: %s\n",
                 std::string(flags.status().message()).c_str());
    return Usage();
  }
  const std::string text_path = flags->String("text", "../shared/fixtures/text/war-and-peace.txt");
  absl::StatusOr<int64_t> repeats_flag = flags->Int("repeats", 5);
  if (!repeats_flag.ok()) {
    std::fprintf(stderr, "loom-bench-tokenizer: %s\n",
                 std::string(repeats_flag.status().message()).c_str());
    return Usage();
  }
  const int repeats = static_cast<int>(std::max<int64_t>(1, *repeats_flag));
  std::vector<std::pair<std::string, std::string>> tokenizers;
  for (const std::string& arg : flags->positional()) {
    const size_t eq = arg.find('=');
    if (eq == std::string::npos || arg[0] == '-') return Usage();
    tokenizers.emplace_back(arg.substr(0, eq), arg.substr(eq + 1));
  }
  if (tokenizers.empty()) return Usage();
  const std::string text = ReadFile(text_path);
  if (text.empty()) {
    std::fprintf(stderr, "cannot read %s\n", text_path.c_str());
    return 1;
  }
  const double mb = text.size() / 1e6;
  std::printf("text: %s (%.2f MB), median of %d runs, one thread\n\n", text_path.c_str(), mb,
              repeats);

  // Baselines.
  size_t lines = 0;
  const double split_s = MedianSeconds(repeats, [&] {
    lines = 0;
    for (const char* p = text.data(); p != nullptr;) {
      p = static_cast<const char*>(std::memchr(p, '\n', text.data() + text.size() - p));
      if (p != nullptr) ++p;
      ++lines;
    }
  });
  auto regex = loom::tokenizer::Regex::Compile(
      R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)", false);
  if (!regex.ok()) return 1;
  size_t pieces = 0;
  const double regex_s =
      MedianSeconds(repeats, [&] { pieces = (*regex)->FindMatches(text).size(); });

  std::printf("%-14s %12s %12s %14s %10s %18s\n", "tokenizer", "encode MB/s", "decode MB/s",
              "tokens/s", "tokens", "encode vs regex");
  std::printf("%-14s %12.1f %12s %14s %10zu %18s\n", "memchr lines", mb / split_s, "-", "-", lines,
              "-");
  std::printf("%-14s %12.1f %12s %14s %10zu %18s\n", "gpt2 regex", mb / regex_s, "-", "-", pieces,
              "1.00x");
  for (const auto& [name, path] : tokenizers) {
    auto tokenizer = loom::tokenizer::Tokenizer::FromFile(path);
    if (!tokenizer.ok()) {
      std::fprintf(stderr, "%s: %s\n", name.c_str(),
                   std::string(tokenizer.status().message()).c_str());
      return 1;
    }
    std::vector<int32_t> ids;
    // The first encode fills the word cache; the median reflects the steady state of a server.
    const double encode_s =
        MedianSeconds(repeats, [&] { ids = *(*tokenizer)->Encode(text, false); });
    std::string decoded;
    const double decode_s =
        MedianSeconds(repeats, [&] { decoded = *(*tokenizer)->Decode(ids, false); });
    std::printf("%-14s %12.1f %12.1f %14.0f %10zu %17.2fx\n", name.c_str(), mb / encode_s,
                decoded.size() / 1e6 / decode_s, ids.size() / encode_s, ids.size(),
                regex_s / encode_s);
  }
  return 0;
}
