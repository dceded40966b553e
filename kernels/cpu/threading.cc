#include "kernels/threading.h"

#include <cblas.h>
#include <omp.h>

#include <thread>

namespace loom::kernels {

void SetNumThreads(int n) {
  if (n <= 0) n = static_cast<int>(std::thread::hardware_concurrency());
  if (n <= 0) n = 1;
  omp_set_num_threads(n);
  // OpenMP owns the cores: two spinning thread pools starve each other, and Linear splits its
  // work over the OpenMP threads itself.
  openblas_set_num_threads(1);
}

int NumThreads() { return omp_get_max_threads(); }

}  // namespace loom::kernels
