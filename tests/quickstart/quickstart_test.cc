// tools/quickstart.sh, the main job, run as a user runs it from a clone (against this build, set-up
// and build skipped): the answer after the dummy start is noise, the answers after the reload and
// the staged swap are English, each names the weight versions it came from, a swap mid-request
// shows in that request's answer, the cluster is gone afterwards, and it all takes under a minute.
//
// "English" is measured, not matched: the share of an answer's words that are among the first
// whole-word tokens of models/war-and-peace/v2/tokenizer.json. BPE adds tokens in the order of
// its merges, so those are the book's most frequent words (the, and, of, he, that, ...). Over 60
// sampled answers of 40 tokens each (3 prompts, 20 seeds), dummy weights gave 0-0.28 and both
// trained versions 0.44-0.81; at temperature 1, 0.38-0.62.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/test_paths.h"

namespace loom {
namespace {

constexpr int kCommonWords = 100;        // whole-word tokens that count as common
constexpr double kEnglishAtLeast = 0.4;  // share of common words in an English answer
constexpr double kNoiseBelow = 0.3;      // ... and in the dummy weights' noise

// Runs the quickstart in its own process group with its output in `log`; its pid.
pid_t StartQuickstart(const std::string& log) {
  const std::string script = testing::SourceDir() + "/tools/quickstart.sh";
  const pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    const int fd = open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    dup2(fd, 2);
    setenv("LOOM_QUICKSTART_NO_BUILD", "1", 1);
    setenv("LOOM_BUILD_DIR", testing::BinaryDir().c_str(), 1);
    setenv("COLUMNS", "400", 1);  // no clipped lines: the test reads the ready line's pids
    execl("/bin/bash", "bash", script.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

// Waits up to `timeout` for `pid`; its exit code (128 + signal when killed), or -1 on timeout.
int WaitFor(pid_t pid, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  kill(-pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return -1;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

bool Alive(int64_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const size_t paren = line.rfind(')');
  return paren == std::string::npos || line.substr(paren + 2, 1) != "Z";
}

// The worker pids the ready line names ("rank 0=ready(pid 123, cpu)").
std::vector<int64_t> WorkerPids(const std::string& log) {
  std::vector<int64_t> pids;
  static const std::regex kPid(R"(rank \d+=\w+\(pid (\d+))");
  for (std::sregex_iterator it(log.begin(), log.end(), kPid), end; it != end; ++it) {
    pids.push_back(std::stoll((*it)[1]));
  }
  return pids;
}

std::set<std::string> CommonWords() {
  std::ifstream in(testing::SourceDir() + "/models/war-and-peace/v2/tokenizer.json");
  const nlohmann::json vocab = nlohmann::json::parse(in).at("model").at("vocab");
  std::vector<std::pair<int, std::string>> words;
  static const std::regex kWord("^\xC4\xA0([A-Za-z]+)$");  // "Ġword": a word after a space
  for (const auto& [token, id] : vocab.items()) {
    std::smatch m;
    if (!std::regex_match(token, m, kWord)) continue;
    std::string word = m[1];
    if (word.size() == 1 && word != "a" && word != "I") continue;  // letters glued to anything
    for (char& c : word) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    words.emplace_back(id.get<int>(), word);
  }
  std::sort(words.begin(), words.end());
  std::set<std::string> common;
  for (size_t i = 0; i < words.size() && common.size() < kCommonWords; ++i) {
    common.insert(words[i].second);
  }
  return common;
}

struct Share {
  double common = 0;
  size_t words = 0;
};

Share CommonShare(const std::string& text, const std::set<std::string>& common) {
  Share share;
  size_t hits = 0;
  static const std::regex kWord("[A-Za-z]+");
  for (std::sregex_iterator it(text.begin(), text.end(), kWord), end; it != end; ++it) {
    std::string word = it->str();
    for (char& c : word) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    ++share.words;
    hits += common.count(word);
  }
  share.common = share.words == 0 ? 0 : static_cast<double>(hits) / share.words;
  return share;
}

struct Answer {
  std::string text;
  std::vector<int> versions;  // from "[finish: ..., weight versions 2 then 3]"
};

// The answers in order: the lines after a `$ loom generate` command shown in the foreground (or
// after "The streamed answer"), up to its "[finish: ...]" line.
std::vector<Answer> Answers(const std::string& log) {
  std::vector<Answer> answers;
  bool in_answer = false;
  Answer current;
  static const std::regex kVersions(R"(weight versions? ([0-9]+(?: then [0-9]+)*)\]$)");
  static const std::regex kMarker(R"( \[weight version [0-9]+ from here\] ?)");
  for (const std::string& line : Lines(log)) {
    const bool background = !line.empty() && line.back() == '&';
    if ((line.rfind("$ loom generate", 0) == 0 && !background) ||
        line.rfind("The streamed answer", 0) == 0) {
      in_answer = true;
      current = Answer();
    } else if (in_answer && line.rfind("[finish:", 0) == 0) {
      std::smatch m;
      if (std::regex_search(line, m, kVersions)) {
        std::istringstream numbers(std::regex_replace(m[1].str(), std::regex(" then "), " "));
        for (int v; numbers >> v;) current.versions.push_back(v);
      }
      answers.push_back(current);
      in_answer = false;
    } else if (in_answer) {
      current.text += std::regex_replace(line, kMarker, " ") + "\n";
    }
  }
  return answers;
}

TEST(QuickstartTest, DummyNoiseThenEnglishFromEachVersionUnderAMinute) {
  const std::string log = testing::MakeTempDir("loom-quickstart-test") + "/out.txt";
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = StartQuickstart(log);
  ASSERT_GT(pid, 0);
  const int code = WaitFor(pid, std::chrono::seconds(120));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::string out = ReadFile(log);
  ASSERT_EQ(code, 0) << out;
  EXPECT_LT(seconds, 60.0) << out;

  const std::vector<Answer> answers = Answers(out);
  ASSERT_EQ(answers.size(), 4u) << "expected the dummy, v1, streamed and v2 answers:\n" << out;
  const Answer& dummy = answers[0];
  const Answer& v1 = answers[1];
  const Answer& streamed = answers[2];
  const Answer& v2 = answers[3];

  // Versions: one for the dummy load, a later one for the reload, the stream crossing from it to
  // the staged one, and the staged one serving after.
  ASSERT_EQ(dummy.versions.size(), 1u) << out;
  ASSERT_EQ(v1.versions.size(), 1u) << out;
  ASSERT_EQ(streamed.versions.size(), 2u) << "the commit did not land mid-request:\n" << out;
  ASSERT_EQ(v2.versions.size(), 1u) << out;
  EXPECT_LT(dummy.versions[0], v1.versions[0]) << out;
  EXPECT_EQ(streamed.versions[0], v1.versions[0]) << out;
  EXPECT_LT(streamed.versions[0], streamed.versions[1]) << out;
  EXPECT_EQ(v2.versions[0], streamed.versions[1]) << out;
  EXPECT_NE(out.find("[weight version " + std::to_string(v2.versions[0]) + " from here]"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("serving version " + std::to_string(v2.versions[0])), std::string::npos)
      << out;

  const std::set<std::string> common = CommonWords();
  ASSERT_EQ(common.size(), static_cast<size_t>(kCommonWords));
  ASSERT_TRUE(common.count("the") && common.count("and")) << "not frequency-ordered?";
  const Share noise = CommonShare(dummy.text, common);
  EXPECT_GE(noise.words, 5u) << dummy.text;
  EXPECT_LT(noise.common, kNoiseBelow) << "the dummy answer reads like English:\n" << dummy.text;
  std::printf("common-word shares: dummy %.2f", noise.common);
  for (const Answer* a : {&v1, &streamed, &v2}) {
    const Share english = CommonShare(a->text, common);
    std::printf(", %s %.2f", a == &v1 ? "v1" : a == &v2 ? "v2" : "streamed", english.common);
    EXPECT_GE(english.words, 15u) << a->text;
    EXPECT_GE(english.common, kEnglishAtLeast)
        << "not English (" << english.common << " common words):\n" << a->text;
  }
  std::printf(" (English >= %.2f, noise < %.2f); %.1f s\n", kEnglishAtLeast, kNoiseBelow, seconds);

  // Stopped: no worker left, nothing answering at the address.
  const std::vector<int64_t> workers = WorkerPids(out);
  EXPECT_EQ(workers.size(), 2u) << out;
  for (int64_t worker : workers) EXPECT_FALSE(Alive(worker)) << "worker " << worker << " left";
  std::smatch address;
  ASSERT_TRUE(std::regex_search(out, address, std::regex("listening on (\\S+)"))) << out;
  const std::string status = testing::BinaryDir() + "/tools/loom status --timeout 1 --address " +
                             address[1].str() + " >/dev/null 2>&1";
  EXPECT_NE(std::system(status.c_str()), 0) << "still answering at " << address[1];
}

// Starts the quickstart, waits for its cluster, sends `signal` to `target` (the script's pid, or
// minus it: its whole process group) and checks that the workers are gone soon after.
void ExpectSignalStopsTheCluster(int signal, bool whole_group) {
  const std::string log = testing::MakeTempDir("loom-quickstart-test") + "/out.txt";
  const pid_t pid = StartQuickstart(log);
  ASSERT_GT(pid, 0);
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (WorkerPids(out).size() < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    out = ReadFile(log);
  }
  const std::vector<int64_t> workers = WorkerPids(out);
  ASSERT_EQ(workers.size(), 2u) << out;
  kill(whole_group ? -pid : pid, signal);
  const int code = WaitFor(pid, std::chrono::seconds(20));
  out = ReadFile(log);
  EXPECT_NE(code, 0) << out;
  EXPECT_NE(code, -1) << "still running 20 s after signal " << signal << ":\n" << out;
  for (int64_t worker : workers) {
    for (int i = 0; i < 100 && Alive(worker); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_FALSE(Alive(worker)) << "worker " << worker << " outlived signal " << signal << ":\n"
                                << out;
  }
}

// What a terminal sends the foreground process group on Ctrl-C.
TEST(QuickstartTest, CtrlCStopsTheCluster) { ExpectSignalStopsTheCluster(SIGINT, true); }

// Only the script is told to stop (a supervisor's kill): it stops the cluster it started.
TEST(QuickstartTest, TerminatingTheScriptStopsTheCluster) {
  ExpectSignalStopsTheCluster(SIGTERM, false);
}

}  // namespace
}  // namespace loom
