// `loom`: Loom's command line.
#include <cstdio>
#include <cstring>

#include "tools/commands.h"

namespace {

constexpr char kUsage[] =
    "usage: loom COMMAND [flags]\n\n"
    "Commands:\n"
    "  generate   generate from a HuggingFace model directory in this process\n"
    "  bench      measure prefill and decode throughput of a model\n\n"
    "Run `loom COMMAND --help` for a command's flags. To make a model to try, see\n"
    "`loom-make-model --help`.\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") ||
      !std::strcmp(argv[1], "help")) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  if (!std::strcmp(argv[1], "generate")) return loom::cli::GenerateCommand(argc, argv);
  if (!std::strcmp(argv[1], "bench")) return loom::cli::BenchCommand(argc, argv);
  std::fprintf(stderr, "loom: unknown command \"%s\"\n\n%s", argv[1], kUsage);
  return 2;
}
