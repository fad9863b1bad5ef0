// HostRule: the politeness settings of one class of hosts, as plain data.
// Field names are the public config's (ServerConfig.politeness.default and
// .rules[]); the config layer converts its proto into these structs, and
// RuleSet::Create validates them. Defaults are those of a host that no rule
// names: 16 attempts at once, no rate limit, breaker and retry budget on.
//
// Thread-safety: plain values; immutable once in a RuleSet.
#ifndef FETCHD_SERVICE_CORE_POLITENESS_RULE_H_
#define FETCHD_SERVICE_CORE_POLITENESS_RULE_H_

#include <string>
#include <vector>

#include "absl/time/time.h"

namespace fetchd::core::politeness {

// Envoy outlier-detection style circuit breaker (see circuit_breaker.h).
struct BreakerConfig {
  // Consecutive failures (connect errors, timeouts, 5xx) that open the
  // breaker. 0 turns the breaker off.
  int consecutive_failures = 5;
  // How long the first trip keeps the breaker open; each further trip
  // without a recovery in between doubles it, up to max_open_time.
  absl::Duration base_open_time = absl::Seconds(5);
  absl::Duration max_open_time = absl::Minutes(5);
  // Attempts allowed at once while half-open.
  int half_open_probes = 1;
};

// Envoy/Finagle style retry budget (see retry_budget.h).
struct RetryBudgetConfig {
  // Retries outstanding at a host may reach this share of the attempts in
  // flight there, in [0, 1]...
  double ratio = 0.2;
  // ...and never fewer than this many.
  int min_retry_concurrency = 10;
};

struct HostRule {
  // Names the rule in errors and in metric labels (never a host).
  std::string name;
  // Host patterns (see host_pattern.h). Empty for the default rule.
  std::vector<std::string> hosts;
  // Attempts in flight at once per host key (scheme://host:port).
  int max_concurrency = 16;
  // Request starts per second per host key, decimals allowed; 0: unlimited.
  double rate = 0;
  // Starts allowed at once after an idle period; >= 1 when rate > 0.
  int burst = 1;
  // Least time between two starts at one host key (Scrapy's DOWNLOAD_DELAY).
  absl::Duration min_delay = absl::ZeroDuration();
  // Requests that may wait for one host key; past it a request is refused
  // (queue full) instead of held in memory. 0: none may wait.
  int max_queue = 10000;  // The server config makes it limits.max_pending.
  BreakerConfig breaker;
  RetryBudgetConfig retry_budget;
  // AIMD concurrency between 1 and max_concurrency (see adaptive_limit.h).
  bool adaptive = false;
};

// What a batch may ask for its own requests. 0 asks for nothing.
struct BatchAsk {
  int max_concurrency = 0;
  double rate = 0;
};

// The rule a batch's requests follow: the server's, made stricter where the
// batch asks for a lower concurrency or a lower rate, never looser (a higher
// ask, or an ask of "unlimited", leaves the server's value). Only
// max_concurrency and rate change; the host-wide state (pause, breaker,
// budget) stays the server rule's.
[[nodiscard]] HostRule Stricter(const HostRule& server, const BatchAsk& ask);

}  // namespace fetchd::core::politeness

#endif  // FETCHD_SERVICE_CORE_POLITENESS_RULE_H_
