// ByteProgress: the progress display of `fetchctl get URL -o FILE`, as text:
// bytes so far, rate, and percentage and ETA when the size is known. On a
// terminal it is one line redrawn in place ("\r..."); elsewhere (a pipe, a
// log file) a plain line per interval, so that logs stay readable.
//
// Pure: the caller supplies the time and writes the text (to stderr).
// Thread-compatible.
#ifndef FETCHD_CLIENT_BYTE_PROGRESS_H_
#define FETCHD_CLIENT_BYTE_PROGRESS_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/time/time.h"

namespace fetchd::client {

// "512 B", "1.5 KiB", "12.0 MiB", "1.00 GiB".
std::string FormatBytes(uint64_t bytes);

class ByteProgress {
 public:
  // `total`: the body's size when known (BodyHead.content_length).
  // `terminal`: redraw one line in place; else print a line per
  // kLineInterval.
  ByteProgress(std::optional<uint64_t> total, absl::Time start, bool terminal);

  // Redraws at most every 100 ms on a terminal, prints a line at most every
  // second elsewhere: the text to write, or nothing yet.
  std::optional<std::string> Update(uint64_t bytes, absl::Time now);
  // The final state: on a terminal the last redraw and a newline; else a
  // last line.
  std::string Finish(uint64_t bytes, absl::Time now);

  static constexpr absl::Duration kRedrawInterval = absl::Milliseconds(100);
  static constexpr absl::Duration kLineInterval = absl::Seconds(1);

 private:
  // "12.0 MiB of 1.00 GiB (1.2%)  95.3 MiB/s  ETA 10s".
  std::string Describe(uint64_t bytes, absl::Time now) const;

  const std::optional<uint64_t> total_;
  const absl::Time start_;
  const bool terminal_;
  absl::Time last_ = absl::InfinitePast();
  size_t last_width_ = 0;
};

}  // namespace fetchd::client

#endif  // FETCHD_CLIENT_BYTE_PROGRESS_H_
