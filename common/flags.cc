#include "common/flags.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace loom::cli {

absl::StatusOr<Flags> Flags::Parse(int argc, char** argv, int first,
                                   const std::vector<FlagSpec>& specs) {
  std::map<std::string, const FlagSpec*> known;
  std::map<char, const FlagSpec*> short_names;
  for (const FlagSpec& s : specs) {
    known[s.name] = &s;
    if (s.is_bool && s.short_name != '\0') short_names[s.short_name] = &s;
  }
  Flags flags;
  for (int i = first; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.size() == 2 && arg[0] == '-' && short_names.count(arg[1]) > 0) {
      flags.values_[short_names[arg[1]]->name].push_back("");
      continue;
    }
    if (arg.rfind("--", 0) != 0 || arg == "--") {
      flags.positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2), value;
    bool has_value = false;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    auto it = known.find(name);
    if (it == known.end()) return absl::InvalidArgumentError(absl::StrCat("unknown flag --", name));
    if (it->second->is_bool) {
      if (has_value) return absl::InvalidArgumentError(absl::StrCat("--", name, " takes no value"));
    } else if (!has_value) {
      if (i + 1 >= argc)
        return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
      value = argv[++i];
    }
    flags.values_[name].push_back(value);
  }
  return flags;
}

std::string Flags::Usage(const std::vector<FlagSpec>& specs) {
  std::string out;
  for (const FlagSpec& s : specs) {
    std::string left = absl::StrCat("  --", s.name, s.is_bool ? "" : " VALUE");
    if (left.size() < 30) left.resize(30, ' ');
    absl::StrAppend(&out, left, " ", s.help);
    if (!s.default_value.empty()) absl::StrAppend(&out, " (default: ", s.default_value, ")");
    absl::StrAppend(&out, "\n");
  }
  return out;
}

std::string Flags::String(const std::string& name, const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second.back();
}

std::vector<std::string> Flags::All(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>{} : it->second;
}

absl::StatusOr<int64_t> Flags::Int(const std::string& name, int64_t fallback) const {
  if (!Has(name)) return fallback;
  int64_t v;
  if (!absl::SimpleAtoi(String(name), &v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, ": \"", String(name), "\" is not an integer"));
  }
  return v;
}

absl::StatusOr<uint64_t> Flags::Uint(const std::string& name, uint64_t fallback) const {
  if (!Has(name)) return fallback;
  uint64_t v;
  // SimpleAtoi into an unsigned type already refuses a sign, so "-1" is an error here.
  if (!absl::SimpleAtoi(String(name), &v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, ": \"", String(name), "\" is not a non-negative integer"));
  }
  return v;
}

absl::StatusOr<double> Flags::Double(const std::string& name, double fallback) const {
  if (!Has(name)) return fallback;
  double v;
  if (!absl::SimpleAtod(String(name), &v) || !std::isfinite(v)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, ": \"", String(name), "\" is not a number"));
  }
  return v;
}

absl::StatusOr<int64_t> Flags::Bytes(const std::string& name, int64_t fallback) const {
  if (!Has(name)) return fallback;
  std::string text = String(name);
  int64_t mult = 1;
  if (!text.empty()) {
    switch (text.back()) {
      case 'K':
      case 'k':
        mult = int64_t{1} << 10;
        break;
      case 'M':
      case 'm':
        mult = int64_t{1} << 20;
        break;
      case 'G':
      case 'g':
        mult = int64_t{1} << 30;
        break;
      case 'T':
      case 't':
        mult = int64_t{1} << 40;
        break;
      default:
        break;
    }
    if (mult != 1) text.pop_back();
  }
  double v;
  if (!absl::SimpleAtod(text, &v) || !(v > 0) || v * mult > 9e18) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", name, ": \"", String(name), "\" is not a size (e.g. 512M, 2G)"));
  }
  return static_cast<int64_t>(v * mult);
}

int RunVerb(const std::string& verb, int argc, char** argv, const std::vector<FlagSpec>& specs,
            const std::string& usage, absl::Status (*run)(const Flags&), int first_arg) {
  absl::StatusOr<Flags> flags = Flags::Parse(argc, argv, first_arg, specs);
  if (flags.ok() && flags->Bool("help")) {
    std::printf("%s\n%s", usage.c_str(), Flags::Usage(specs).c_str());
    return 0;
  }
  absl::Status s = flags.ok() ? run(*flags) : flags.status();
  if (s.ok()) return 0;
  std::fprintf(stderr, "%s%s: %s\n", first_arg == 2 ? "loom " : "", verb.c_str(),
               std::string(s.message()).c_str());
  return flags.ok() ? 1 : 2;
}

absl::StatusOr<std::vector<int64_t>> ParseIntList(const std::string& text,
                                                  const std::string& what) {
  std::vector<int64_t> out;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    part = absl::StripAsciiWhitespace(part);
    int64_t v;
    if (!absl::SimpleAtoi(part, &v)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": \"", std::string(part), "\" is not an integer"));
    }
    out.push_back(v);
  }
  return out;
}

}  // namespace loom::cli
