// The politeness section of the server configuration (ServerConfig
// .politeness) as the engine's plain types: the RuleSet every worker
// applies, and the host-wide pause.
//
// Unset fields take defaults: those of the default rule are HostRule's,
// except max_concurrency (limits.max_per_host, so the --max_per_host flag
// and FETCHD_MAX_PER_HOST keep working), max_queue (limits.max_pending:
// whatever the server admits may wait) and breaker.consecutive_failures
// (0: the breaker is opt-in per rule); a field a rule leaves unset takes the
// default rule's value.
#ifndef FETCHD_SERVICE_CONFIG_POLITENESS_CONFIG_H_
#define FETCHD_SERVICE_CONFIG_POLITENESS_CONFIG_H_

#include <memory>

#include "absl/status/statusor.h"
#include "fetch/v1/config.pb.h"
#include "service/core/politeness/host_backoff.h"
#include "service/core/politeness/rule_set.h"

namespace fetchd::config {

// The validated rules; InvalidArgument naming the rule and the field, e.g.
//   politeness.rules[1] "site": burst: must be >= 1 when rate > 0
[[nodiscard]] absl::StatusOr<std::shared_ptr<const core::politeness::RuleSet>>
PolitenessRules(const fetch::v1::ServerConfig& config);

// The host-wide pause after 429/503 (politeness.pause); InvalidArgument
// naming the field.
[[nodiscard]] absl::StatusOr<core::politeness::HostBackoffConfig>
PolitenessPause(const fetch::v1::ServerConfig& config);

}  // namespace fetchd::config

#endif  // FETCHD_SERVICE_CONFIG_POLITENESS_CONFIG_H_
