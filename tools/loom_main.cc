// `loom`: Loom's command line.
#include <cstdio>
#include <cstring>

#include "tools/commands.h"

namespace {

constexpr char kUsage[] =
    "usage: loom COMMAND [flags]\n\n"
    "Commands:\n"
    "  serve      start a controller and its tensor-parallel workers; serve the Loom API\n"
    "  generate   generate from a running server, or (--model DIR) in this process\n"
    "  rpc        call a worker method on every rank of a running server\n"
    "  status     show a running server's ranks and requests\n"
    "  stop       stop a running server and its workers\n"
    "  bench      measure prefill and decode throughput of a model\n"
    "  save-sharded-state  write a model's per-rank shards for fast restarts at --tp N\n\n"
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
  if (!std::strcmp(argv[1], "serve")) return loom::cli::ServeCommand(argc, argv);
  if (!std::strcmp(argv[1], "rpc")) return loom::cli::RpcCommand(argc, argv);
  if (!std::strcmp(argv[1], "status")) return loom::cli::StatusCommand(argc, argv);
  if (!std::strcmp(argv[1], "stop")) return loom::cli::StopCommand(argc, argv);
  if (!std::strcmp(argv[1], "save-sharded-state")) {
    return loom::cli::SaveShardedStateCommand(argc, argv);
  }
  std::fprintf(stderr, "loom: unknown command \"%s\"\n\n%s", argv[1], kUsage);
  return 2;
}
