#include "client/byte_progress.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace fetchd::client {

std::string FormatBytes(uint64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  const char* const kUnits[] = {"KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes) / 1024;
  int unit = 0;
  while (value >= 1024 && unit < 3) {
    value /= 1024;
    ++unit;
  }
  return value < 10 ? absl::StrFormat("%.2f %s", value, kUnits[unit])
                    : absl::StrFormat("%.1f %s", value, kUnits[unit]);
}

ByteProgress::ByteProgress(std::optional<uint64_t> total, absl::Time start,
                           bool terminal)
    : total_(total), start_(start), terminal_(terminal) {}

std::string ByteProgress::Describe(uint64_t bytes, absl::Time now) const {
  const double seconds = absl::ToDoubleSeconds(now - start_);
  const double rate = seconds > 0 ? static_cast<double>(bytes) / seconds : 0;
  std::string text = FormatBytes(bytes);
  if (total_.has_value()) {
    const double fraction =
        *total_ > 0 ? static_cast<double>(bytes) / static_cast<double>(*total_)
                    : 1.0;
    absl::StrAppend(&text, " of ", FormatBytes(*total_),
                    absl::StrFormat(" (%.1f%%)", 100 * fraction));
  }
  absl::StrAppend(&text, "  ", FormatBytes(static_cast<uint64_t>(rate)), "/s");
  if (total_.has_value() && rate > 0 && bytes < *total_) {
    const double left = static_cast<double>(*total_ - bytes) / rate;
    absl::StrAppend(&text, "  ETA ",
                    absl::FormatDuration(absl::Seconds(std::ceil(left))));
  }
  return text;
}

std::optional<std::string> ByteProgress::Update(uint64_t bytes,
                                                absl::Time now) {
  if (now - last_ < (terminal_ ? kRedrawInterval : kLineInterval)) {
    return std::nullopt;
  }
  last_ = now;
  std::string text = Describe(bytes, now);
  if (!terminal_) return absl::StrCat("fetchctl: ", text, "\n");
  // Blank out what is left of a longer previous line.
  const size_t width = text.size();
  if (width < last_width_) text.append(last_width_ - width, ' ');
  last_width_ = width;
  return absl::StrCat("\r", text);
}

std::string ByteProgress::Finish(uint64_t bytes, absl::Time now) {
  last_ = absl::InfinitePast();
  std::optional<std::string> text = Update(bytes, now);
  return terminal_ ? absl::StrCat(*text, "\n") : *text;
}

}  // namespace fetchd::client
