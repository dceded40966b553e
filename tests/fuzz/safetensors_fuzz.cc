// Fuzzes SafetensorsFile::Open: the input is a whole .safetensors file (8-byte header length,
// JSON header, data). It is written to an in-memory file and opened by path, as a checkpoint is.
// Every tensor the reader accepts must lie inside the file: each one's bytes are read.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/safetensors.h"

namespace {

int MemoryFile() {
  static const int fd = memfd_create("fuzz.safetensors", MFD_CLOEXEC);
  if (fd < 0) std::abort();
  return fd;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = MemoryFile();
  if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != static_cast<ssize_t>(size)) {
    std::abort();
  }
  static const std::string path = "/proc/self/fd/" + std::to_string(fd);
  auto file = loom::SafetensorsFile::Open(path);
  if (!file.ok()) return 0;
  const uint64_t data_size = size - (*file)->data_offset();
  for (const loom::SafetensorsEntry& e : (*file)->entries()) {
    if (e.begin > e.end || e.end > data_size) std::abort();
    auto tensor = (*file)->Get(e.name);
    if (!tensor.ok() || tensor->nbytes() != e.end - e.begin) std::abort();
    // Reads every byte of the view (or copy): ASan reports any byte outside the mapping.
    const auto* bytes = static_cast<const volatile uint8_t*>(tensor->raw_data());
    uint8_t sum = 0;
    for (size_t i = 0; i < tensor->nbytes(); ++i) sum += bytes[i];
    (void)sum;
  }
  return 0;
}
