// HeapStats: what the allocator holds, when fetchd runs on gperftools'
// tcmalloc (the server binary links it; tests and sanitizer builds don't).
// RSS alone can't tell a leak from freed memory the allocator keeps for
// reuse; these figures can: `in_use` is what the program holds, the rest is
// free memory tcmalloc has not given back to the kernel yet.
//
// The tcmalloc entry points are weak references, so this compiles and links
// without tcmalloc and reports nothing there.
//
// Thread-safety: every function may be called from any thread.
#ifndef FETCHD_SERVICE_METRICS_HEAP_STATS_H_
#define FETCHD_SERVICE_METRICS_HEAP_STATS_H_

#include <cstdint>
#include <optional>

namespace fetchd::metrics {

struct HeapStats {
  // Bytes the program has allocated and not freed.
  uint64_t in_use = 0;
  // Free bytes in the per-thread, transfer and central caches (small
  // objects, kept for reuse).
  uint64_t free_cached = 0;
  // Free pages in the page heap, still mapped (part of RSS).
  uint64_t free_mapped = 0;
  // Free pages returned to the kernel (not in RSS).
  uint64_t released = 0;
};

// nullopt unless the process runs on tcmalloc.
std::optional<HeapStats> ReadHeapStats();

// Returns the page heap's free pages to the kernel (madvise); a no-op
// without tcmalloc. Returns whether tcmalloc was there to ask.
bool ReleaseFreeHeap();

// Caps the free memory all threads' caches may hold together (tcmalloc's
// default is 32 MiB, which a long-running fetchd fills slowly: RSS that
// creeps for hours without a leak). Returns whether tcmalloc took it.
bool SetThreadCacheLimit(uint64_t bytes);

}  // namespace fetchd::metrics

#endif  // FETCHD_SERVICE_METRICS_HEAP_STATS_H_
