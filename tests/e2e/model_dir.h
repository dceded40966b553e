// Model directories for end-to-end tests: fixture models from tests/data, or fresh ones made by
// loom-make-model.
#ifndef LOOM_TESTS_E2E_MODEL_DIR_H_
#define LOOM_TESTS_E2E_MODEL_DIR_H_

#include <string>

namespace loom::testing {

// A fixture model whose greedy outputs are not degenerate (an f32 Llama with GQA).
std::string FixtureModel();
// Runs loom-make-model with `flags` into a new temp dir and returns the dir.
std::string MakeModel(const std::string& flags);
// Runs a shell command; returns its exit status and fills `output` with stdout+stderr.
int RunCommand(const std::string& command, std::string* output);

}  // namespace loom::testing

#endif  // LOOM_TESTS_E2E_MODEL_DIR_H_
