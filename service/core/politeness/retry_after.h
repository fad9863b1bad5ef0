// Retry-After (RFC 9110 10.2.3) as a delay. curl parses it for transfers
// (CURLINFO_RETRY_AFTER); this is the same rule as a pure function, for
// tests, tools and responses curl did not see.
//
// Thread-safety: stateless.
#ifndef FETCHD_SERVICE_CORE_POLITENESS_RETRY_AFTER_H_
#define FETCHD_SERVICE_CORE_POLITENESS_RETRY_AFTER_H_

#include <optional>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace fetchd::core::politeness {

// The delay a Retry-After header `value` asks for, received at wall-clock
// time `wall_now`. Accepts delay-seconds ("120") and the HTTP-date forms:
// IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") and the obsolete RFC 850
// ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime
// ("Sun Nov  6 08:49:37 1994") forms. A date in the past gives zero.
// Leading and trailing blanks are ignored. Nullopt for anything else
// (negative or fractional seconds, other date formats, time zones other
// than GMT).
[[nodiscard]] std::optional<absl::Duration> ParseRetryAfter(
    absl::string_view value, absl::Time wall_now);

}  // namespace fetchd::core::politeness

#endif  // FETCHD_SERVICE_CORE_POLITENESS_RETRY_AFTER_H_
