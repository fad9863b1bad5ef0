// ProcessStats: the process's CPU time, resident memory, open file
// descriptors and start time, read from /proc (Linux). The parsers are pure
// functions of the files' text, so they are tested on fixed samples.
//
// Thread-safety: stateless; every function may be called from any thread.
#ifndef FETCHD_SERVICE_METRICS_PROCESS_STATS_H_
#define FETCHD_SERVICE_METRICS_PROCESS_STATS_H_

#include <cstdint>
#include <optional>

#include "absl/strings/string_view.h"

namespace fetchd::metrics {

// From /proc/<pid>/stat: clock ticks (sysconf(_SC_CLK_TCK)).
struct ProcStat {
  uint64_t utime_ticks = 0;
  uint64_t stime_ticks = 0;
  // Since boot.
  uint64_t start_ticks = 0;
};

// Parses the one line of /proc/<pid>/stat; nullopt if it is malformed. The
// command name (field 2) may contain spaces and parentheses.
std::optional<ProcStat> ParseProcStat(absl::string_view text);
// Resident pages: the second field of /proc/<pid>/statm.
std::optional<uint64_t> ParseStatmResidentPages(absl::string_view text);
// Boot time, Unix seconds: the "btime" line of /proc/stat.
std::optional<uint64_t> ParseBootTime(absl::string_view text);

// The values of this process right now; a value that cannot be read is
// nullopt.
struct ProcessStats {
  std::optional<double> cpu_seconds;
  std::optional<double> resident_bytes;
  std::optional<double> open_fds;
};
ProcessStats ReadProcessStats();

// When this process started, Unix seconds; nullopt if /proc can't say.
std::optional<double> ReadProcessStartTime();

}  // namespace fetchd::metrics

#endif  // FETCHD_SERVICE_METRICS_PROCESS_STATS_H_
