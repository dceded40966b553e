// How many CPU threads the kernels (OpenMP loops and the BLAS) may use in this process: the one
// place that sets them. Serving code, tests and benchmarks all go through SetNumThreads.
#ifndef LOOM_KERNELS_THREADING_H_
#define LOOM_KERNELS_THREADING_H_

#include <string>

namespace loom::kernels {

// OpenMP gets n threads (n <= 0: every core) and OpenBLAS one: two spinning pools would starve
// each other, and Linear splits its sgemm calls over the OpenMP threads itself. A worker of a TP
// group is given cores / N, so ranks do not oversubscribe the machine.
void SetNumThreads(int n);
// The same, with OpenBLAS's own pool at blas_threads (>= 1). Only for tests and benchmarks that
// measure the BLAS's threading against Linear's.
void SetNumThreads(int n, int blas_threads);
int NumThreads();
int NumBlasThreads();

// The environment entry ("OMP_NUM_THREADS=n") for a child process that will run kernels with n
// threads. OpenBLAS sizes its thread pool from it when the library loads, before the child's
// main can call SetNumThreads, so without it every rank would start a pool of every core.
std::string NumThreadsEnv(int n);
// Whether an environment entry ("NAME=value") is the one NumThreadsEnv writes, to drop a
// parent's before adding the child's.
bool IsNumThreadsEnv(const char* entry);

}  // namespace loom::kernels

#endif  // LOOM_KERNELS_THREADING_H_
