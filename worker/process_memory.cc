#include "worker/process_memory.h"

#include <unistd.h>

#include <fstream>
#include <string>

namespace loom {
namespace {

// The kB value of `key` in a /proc file of "Key:  value kB" lines, in bytes, or -1.
int64_t ProcKibField(const char* path, const std::string& key) {
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, key.size(), key) != 0) continue;
    return std::stoll(line.substr(key.size())) * 1024;  // "Key:   123 kB"
  }
  return -1;
}

}  // namespace

int64_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size_pages = 0, resident_pages = 0;
  if (!(statm >> size_pages >> resident_pages)) return -1;
  return resident_pages * sysconf(_SC_PAGESIZE);
}

int64_t PeakResidentBytes() { return ProcKibField("/proc/self/status", "VmHWM:"); }

bool ResetPeakResident() {
  std::ofstream clear("/proc/self/clear_refs");
  clear << "5";
  clear.flush();
  return static_cast<bool>(clear);
}

int64_t AvailableMemoryBytes() { return ProcKibField("/proc/meminfo", "MemAvailable:"); }

}  // namespace loom
