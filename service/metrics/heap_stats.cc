#include "service/metrics/heap_stats.h"

#include <cstddef>

// gperftools' C interface (gperftools/malloc_extension_c.h), declared weak
// here so that binaries without tcmalloc link and see null pointers.
extern "C" {
int MallocExtension_GetNumericProperty(const char* property, size_t* value)
    __attribute__((weak));
int MallocExtension_SetNumericProperty(const char* property, size_t value)
    __attribute__((weak));
void MallocExtension_ReleaseFreeMemory(void) __attribute__((weak));
}

namespace fetchd::metrics {
namespace {

bool Property(const char* name, uint64_t* out) {
  size_t value = 0;
  if (MallocExtension_GetNumericProperty(name, &value) == 0) return false;
  *out = value;
  return true;
}

}  // namespace

std::optional<HeapStats> ReadHeapStats() {
  if (MallocExtension_GetNumericProperty == nullptr) return std::nullopt;
  HeapStats stats;
  uint64_t central = 0;
  uint64_t transfer = 0;
  uint64_t thread = 0;
  if (!Property("generic.current_allocated_bytes", &stats.in_use) ||
      !Property("tcmalloc.pageheap_free_bytes", &stats.free_mapped) ||
      !Property("tcmalloc.pageheap_unmapped_bytes", &stats.released) ||
      !Property("tcmalloc.central_cache_free_bytes", &central) ||
      !Property("tcmalloc.transfer_cache_free_bytes", &transfer) ||
      !Property("tcmalloc.thread_cache_free_bytes", &thread)) {
    return std::nullopt;
  }
  stats.free_cached = central + transfer + thread;
  return stats;
}

bool ReleaseFreeHeap() {
  if (MallocExtension_ReleaseFreeMemory == nullptr) return false;
  MallocExtension_ReleaseFreeMemory();
  return true;
}

bool SetThreadCacheLimit(uint64_t bytes) {
  if (MallocExtension_SetNumericProperty == nullptr) return false;
  return MallocExtension_SetNumericProperty(
             "tcmalloc.max_total_thread_cache_bytes",
             static_cast<size_t>(bytes)) != 0;
}

}  // namespace fetchd::metrics
