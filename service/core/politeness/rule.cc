#include "service/core/politeness/rule.h"

#include <algorithm>

namespace fetchd::core::politeness {

HostRule Stricter(const HostRule& server, const BatchAsk& ask) {
  HostRule rule = server;
  if (ask.max_concurrency > 0) {
    rule.max_concurrency =
        std::min(server.max_concurrency, ask.max_concurrency);
  }
  // A rate of 0 is "unlimited", so any positive ask is stricter than it.
  if (ask.rate > 0 && (server.rate == 0 || ask.rate < server.rate)) {
    rule.rate = ask.rate;
    // A rule without a rate may have burst 0; a rate needs one start.
    rule.burst = std::max(rule.burst, 1);
  }
  return rule;
}

}  // namespace fetchd::core::politeness
