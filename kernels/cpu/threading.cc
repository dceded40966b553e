#include "kernels/threading.h"

#include <cblas.h>
#include <omp.h>

#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"

namespace loom::kernels {
namespace {

constexpr char kEnvPrefix[] = "OMP_NUM_THREADS=";

}  // namespace

void SetNumThreads(int n) { SetNumThreads(n, 1); }

void SetNumThreads(int n, int blas_threads) {
  if (n <= 0) n = static_cast<int>(std::thread::hardware_concurrency());
  if (n <= 0) n = 1;
  omp_set_num_threads(n);
  openblas_set_num_threads(blas_threads < 1 ? 1 : blas_threads);
}

int NumThreads() { return omp_get_max_threads(); }

int NumBlasThreads() { return openblas_get_num_threads(); }

void RunOnShortLivedThread(const std::function<void()>& fn) {
  std::thread worker(fn);
  worker.join();
}

std::string NumThreadsEnv(int n) { return absl::StrCat(kEnvPrefix, n); }

bool IsNumThreadsEnv(const char* entry) {
  return std::strncmp(entry, kEnvPrefix, sizeof(kEnvPrefix) - 1) == 0;
}

}  // namespace loom::kernels
