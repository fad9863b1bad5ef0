// Peak resident set of the calling process, for the benchmark clients.
#ifndef FETCHD_BENCH_PEAK_RSS_H_
#define FETCHD_BENCH_PEAK_RSS_H_

#include <cstdint>
#include <fstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/strip.h"

namespace fetchd::bench {

// Peak resident set of this process since exec, in KiB (VmHWM), or -1.
// getrusage's ru_maxrss is no substitute: Linux carries the parent's
// high-water mark across fork and exec, so a child of a 20 MB Python script
// reports at least 20 MB.
inline int64_t PeakRssKib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (absl::StartsWith(line, "VmHWM:")) {
      int64_t kib = -1;
      if (absl::SimpleAtoi(absl::StripAsciiWhitespace(absl::StripSuffix(
                               absl::StripPrefix(line, "VmHWM:"), "kB")),
                           &kib)) {
        return kib;
      }
    }
  }
  return -1;
}

}  // namespace fetchd::bench

#endif  // FETCHD_BENCH_PEAK_RSS_H_
