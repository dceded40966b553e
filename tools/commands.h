// The verbs of the `loom` command line; each returns the process exit code.
#ifndef LOOM_TOOLS_COMMANDS_H_
#define LOOM_TOOLS_COMMANDS_H_

namespace loom::cli {

int GenerateCommand(int argc, char** argv);
int BenchCommand(int argc, char** argv);

}  // namespace loom::cli

#endif  // LOOM_TOOLS_COMMANDS_H_
