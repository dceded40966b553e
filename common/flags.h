// The command-line flag parser of every Loom binary (the `loom` verbs, loom-worker, the model
// makers and the benchmarks): `--name value`, `--name=value`, boolean `--name`, and a one-letter
// `-x` where a boolean flag declares one. Every flag must be declared; unknown flags, missing
// values and malformed numbers are errors that name the flag. It lives in common/ because the
// worker, which may not depend on tools/, parses its command line with it too.
#ifndef LOOM_COMMON_FLAGS_H_
#define LOOM_COMMON_FLAGS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace loom::cli {

struct FlagSpec {
  std::string name;  // without the dashes
  bool is_bool = false;
  std::string help;
  std::string default_value;  // shown in --help
  char short_name = '\0';     // boolean flags only: `-x` sets the flag as `--name` does
};

class Flags {
 public:
  // Parses argv[first..argc). Positional arguments (anything not starting with "--", "--" itself,
  // and a "-x" no flag declares) are collected in order. A repeated flag keeps every value.
  static absl::StatusOr<Flags> Parse(int argc, char** argv, int first,
                                     const std::vector<FlagSpec>& specs);
  static std::string Usage(const std::vector<FlagSpec>& specs);

  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  bool Bool(const std::string& name) const { return Has(name); }
  // The last value given, or `fallback` when the flag is absent.
  std::string String(const std::string& name, const std::string& fallback = "") const;
  // Every value given for a repeatable flag, in order.
  std::vector<std::string> All(const std::string& name) const;
  // Typed reads of the last value: `fallback` when absent, an InvalidArgument error naming the
  // flag and its value when malformed.
  absl::StatusOr<int64_t> Int(const std::string& name, int64_t fallback) const;
  absl::StatusOr<uint64_t> Uint(const std::string& name, uint64_t fallback) const;
  absl::StatusOr<double> Double(const std::string& name, double fallback) const;
  // Accepts plain bytes or a K/M/G/T suffix (binary multiples): "512M", "2G".
  absl::StatusOr<int64_t> Bytes(const std::string& name, int64_t fallback) const;
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
};

// Runs a verb: parses flags (exit 2 on a parse error), prints `usage` and the flag list for
// --help (exit 0), otherwise calls `run` and prints its error as "loom VERB: message" (exit 1).
// A standalone tool passes first_arg = 1 (its flags start right after the program name) and is
// named by `verb` alone in errors.
int RunVerb(const std::string& verb, int argc, char** argv, const std::vector<FlagSpec>& specs,
            const std::string& usage, absl::Status (*run)(const Flags&), int first_arg = 2);

// "1,2, 3" -> {1, 2, 3}; anything else is an error naming `what`.
absl::StatusOr<std::vector<int64_t>> ParseIntList(const std::string& text, const std::string& what);

}  // namespace loom::cli

#endif  // LOOM_COMMON_FLAGS_H_
