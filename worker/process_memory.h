// This process's memory as the kernel counts it (/proc): what `describe`, sleep and the weight
// lifecycle report, so their figures are RSS, not estimates.
#ifndef LOOM_WORKER_PROCESS_MEMORY_H_
#define LOOM_WORKER_PROCESS_MEMORY_H_

#include <cstdint>

namespace loom {

// Resident set size (/proc/self/statm), or -1 when unreadable.
int64_t ResidentBytes();
// The largest RSS since the start or the last ResetPeakResident (VmHWM), or -1.
int64_t PeakResidentBytes();
// Starts a new peak from the current RSS (/proc/self/clear_refs "5"); false when refused.
bool ResetPeakResident();
// The machine's MemAvailable (/proc/meminfo), or -1.
int64_t AvailableMemoryBytes();

}  // namespace loom

#endif  // LOOM_WORKER_PROCESS_MEMORY_H_
