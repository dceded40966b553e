// How many CPU threads the kernels (OpenMP loops and the BLAS) may use in this process.
#ifndef LOOM_KERNELS_THREADING_H_
#define LOOM_KERNELS_THREADING_H_

namespace loom::kernels {

// n <= 0 means every core. A worker of a TP group gets cores / N, so ranks do not oversubscribe.
void SetNumThreads(int n);
int NumThreads();

}  // namespace loom::kernels

#endif  // LOOM_KERNELS_THREADING_H_
