// How many CPU threads the kernels (OpenMP loops and the BLAS) may use in this process: the one
// place that sets them. Serving code, tests and benchmarks all go through SetNumThreads.
#ifndef LOOM_KERNELS_THREADING_H_
#define LOOM_KERNELS_THREADING_H_

#include <functional>
#include <string>

namespace loom::kernels {

// OpenMP gets n threads (n <= 0: every core) and OpenBLAS one: two spinning pools would starve
// each other, and Linear splits its sgemm calls over the OpenMP threads itself. A worker of a TP
// group is given cores / N, so ranks do not oversubscribe the machine.
void SetNumThreads(int n);
// The same, with OpenBLAS's own pool at blas_threads (>= 1). Only for tests and benchmarks that
// measure the BLAS's threading against Linear's.
void SetNumThreads(int n, int blas_threads);
// The calling thread's: OpenMP's thread count is per thread, so a thread that runs kernels sets
// its own (a rank's step thread does so before each step).
int NumThreads();
int NumBlasThreads();

// Runs `fn` on a new thread and waits for it. OpenMP keeps a pool of worker threads for every
// thread that starts parallel regions, as long as that thread lives; once a process holds more
// pool threads than cores, libgomp cuts its spin-wait to ~1000 iterations and every parallel
// region of the step thread pays a futex wake-up (measured: a batch-1 decode step 81 -> 88 ms
// on 2 cores). Kernel work off the step thread (weight loads, methods) runs here, so its pool
// ends with it and the step thread's stays the only one.
void RunOnShortLivedThread(const std::function<void()>& fn);

// The environment entry ("OMP_NUM_THREADS=n") for a child process that will run kernels with n
// threads. OpenBLAS sizes its thread pool from it when the library loads, before the child's
// main can call SetNumThreads, so without it every rank would start a pool of every core.
std::string NumThreadsEnv(int n);
// Whether an environment entry ("NAME=value") is the one NumThreadsEnv writes, to drop a
// parent's before adding the child's.
bool IsNumThreadsEnv(const char* entry);

}  // namespace loom::kernels

#endif  // LOOM_KERNELS_THREADING_H_
