// Model directories for end-to-end tests: fixture models from tests/data, or fresh ones made by
// loom-make-model.
#ifndef LOOM_TESTS_E2E_MODEL_DIR_H_
#define LOOM_TESTS_E2E_MODEL_DIR_H_

#include <cstdint>
#include <string>
#include <vector>

namespace loom::testing {

// tests/data/models/NAME-f32.
std::string FixtureModelDir(const std::string& name);
// The python the client tests run: LOOM_PYTHON, else the virtual environment tools/test.sh
// makes in the build dir, else python3.
std::string TestPython();

// What HF transformers produced for a fixture model (tools/make_reference_fixtures.py), one
// entry per prompt in each vector.
struct HfReference {
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::vector<int32_t>> greedy;       // greedy tokens (24 or 32)
  std::vector<std::vector<float>> last_logits;    // the prompt's last position, whole vocab
  std::string dtype;  // the checkpoint's: "float32", "bfloat16" or "float16"
};
// Reads MODEL_DIR/reference.json, or the given .json file.
HfReference ReadHfReference(const std::string& path);

// A fixture model whose greedy outputs are not degenerate (an f32 Llama with GQA).
std::string FixtureModel();
// Runs loom-make-model with `flags` into a new temp dir and returns the dir.
std::string MakeModel(const std::string& flags);
// Runs a shell command; returns its exit status and fills `output` with stdout+stderr.
int RunCommand(const std::string& command, std::string* output);

}  // namespace loom::testing

#endif  // LOOM_TESTS_E2E_MODEL_DIR_H_
