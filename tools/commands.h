// The verbs of the `loom` command line; each returns the process exit code.
#ifndef LOOM_TOOLS_COMMANDS_H_
#define LOOM_TOOLS_COMMANDS_H_

#include <string>

namespace loom::cli {

// Where `loom serve` listens, and the client verbs look, unless told otherwise.
inline constexpr int kDefaultPort = 7430;

int SaveShardedStateCommand(int argc, char** argv);
int GenerateCommand(int argc, char** argv);
int BenchCommand(int argc, char** argv);
int ServeCommand(int argc, char** argv);
int RpcCommand(int argc, char** argv);
int StatusCommand(int argc, char** argv);
int StopCommand(int argc, char** argv);

// loom-worker beside the running executable, or in the build tree's worker/ directory.
std::string DefaultWorkerBinary();

}  // namespace loom::cli

#endif  // LOOM_TOOLS_COMMANDS_H_
