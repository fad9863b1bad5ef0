#include "service/core/politeness/retry_after.h"

#include <algorithm>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"

namespace fetchd::core::politeness {
namespace {

// The HTTP-date forms, IMF-fixdate first (RFC 9110 5.6.7).
constexpr const char* kDateFormats[] = {
    "%a, %d %b %Y %H:%M:%S GMT",  // IMF-fixdate
    "%A, %d-%b-%y %H:%M:%S GMT",  // RFC 850
    "%a %b %e %H:%M:%S %Y",       // asctime
};

}  // namespace

std::optional<absl::Duration> ParseRetryAfter(absl::string_view value,
                                              absl::Time wall_now) {
  value = absl::StripAsciiWhitespace(value);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(),
                  [](char c) { return absl::ascii_isdigit(c); })) {
    int64_t seconds = 0;
    // Past int64: a delay no one waits for; a later cap bounds it anyway.
    if (!absl::SimpleAtoi(value, &seconds)) return absl::InfiniteDuration();
    return absl::Seconds(seconds);
  }
  const std::string text(value);
  for (const char* format : kDateFormats) {
    absl::Time date;
    if (absl::ParseTime(format, text, absl::UTCTimeZone(), &date, nullptr)) {
      return std::max(date - wall_now, absl::ZeroDuration());
    }
  }
  return std::nullopt;
}

}  // namespace fetchd::core::politeness
