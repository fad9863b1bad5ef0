#include "service/metrics/process_stats.h"

#include <dirent.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"

namespace fetchd::metrics {
namespace {

// The whole file, or nullopt. /proc files report size 0, so read by stream.
std::optional<std::string> ReadFile(const char* path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

std::optional<ProcStat> ParseProcStat(absl::string_view text) {
  // "pid (comm) state ppid ...": fields after the last ')' start at field 3.
  const size_t paren = text.rfind(')');
  if (paren == absl::string_view::npos) return std::nullopt;
  const std::vector<absl::string_view> fields =
      absl::StrSplit(text.substr(paren + 1), ' ', absl::SkipWhitespace());
  // Field n (1-based, as in proc(5)) is fields[n - 3].
  constexpr size_t kUtime = 14 - 3, kStime = 15 - 3, kStart = 22 - 3;
  ProcStat stat;
  if (fields.size() <= kStart ||
      !absl::SimpleAtoi(fields[kUtime], &stat.utime_ticks) ||
      !absl::SimpleAtoi(fields[kStime], &stat.stime_ticks) ||
      !absl::SimpleAtoi(fields[kStart], &stat.start_ticks)) {
    return std::nullopt;
  }
  return stat;
}

std::optional<uint64_t> ParseStatmResidentPages(absl::string_view text) {
  const std::vector<absl::string_view> fields =
      absl::StrSplit(text, ' ', absl::SkipWhitespace());
  uint64_t pages = 0;
  if (fields.size() < 2 || !absl::SimpleAtoi(fields[1], &pages)) {
    return std::nullopt;
  }
  return pages;
}

std::optional<uint64_t> ParseBootTime(absl::string_view text) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::ConsumePrefix(&line, "btime ")) {
      uint64_t seconds = 0;
      if (absl::SimpleAtoi(line, &seconds)) return seconds;
      return std::nullopt;
    }
  }
  return std::nullopt;
}

ProcessStats ReadProcessStats() {
  ProcessStats out;
  const long ticks = sysconf(_SC_CLK_TCK);  // NOLINT(google-runtime-int)
  const long page = sysconf(_SC_PAGESIZE);  // NOLINT(google-runtime-int)
  if (const auto text = ReadFile("/proc/self/stat"); text && ticks > 0) {
    if (const auto stat = ParseProcStat(*text)) {
      out.cpu_seconds =
          static_cast<double>(stat->utime_ticks + stat->stime_ticks) /
          static_cast<double>(ticks);
    }
  }
  if (const auto text = ReadFile("/proc/self/statm"); text && page > 0) {
    if (const auto pages = ParseStatmResidentPages(*text)) {
      out.resident_bytes =
          static_cast<double>(*pages) * static_cast<double>(page);
    }
  }
  if (DIR* dir = opendir("/proc/self/fd")) {
    int64_t count = 0;
    // readdir() is safe on a stream no other thread uses.
    // NOLINTNEXTLINE(concurrency-mt-unsafe)
    while (const dirent* entry = readdir(dir)) {
      if (entry->d_name[0] != '.') ++count;
    }
    closedir(dir);
    out.open_fds = static_cast<double>(count - 1);  // not the one just read
  }
  return out;
}

std::optional<double> ReadProcessStartTime() {
  const long ticks = sysconf(_SC_CLK_TCK);  // NOLINT(google-runtime-int)
  const auto stat_text = ReadFile("/proc/self/stat");
  const auto boot_text = ReadFile("/proc/stat");
  if (!stat_text || !boot_text || ticks <= 0) return std::nullopt;
  const auto stat = ParseProcStat(*stat_text);
  const auto boot = ParseBootTime(*boot_text);
  if (!stat || !boot) return std::nullopt;
  return static_cast<double>(*boot) +
         static_cast<double>(stat->start_ticks) / static_cast<double>(ticks);
}

}  // namespace fetchd::metrics
