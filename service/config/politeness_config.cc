#include "service/config/politeness_config.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/common/proto_duration.h"
#include "service/common/status_macros.h"

namespace fetchd::config {
namespace {

namespace pol = core::politeness;

// Sets `to` from `d` when `has`; InvalidArgument "<field>: <rule>" for a
// duration protobuf itself would refuse, or (with `positive`) one <= 0.
absl::Status ReadDuration(bool has, const google::protobuf::Duration& d,
                          absl::string_view field, bool positive,
                          absl::Duration& to) {
  if (!has) return absl::OkStatus();
  if (!IsValidProtoDuration(d) ||
      (positive && FromProto(d) <= absl::ZeroDuration())) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, positive ? ": must be > 0" : ": not a valid duration"));
  }
  to = FromProto(d);
  return absl::OkStatus();
}

// Lays the fields `from` sets over `rule`; errors name `where` and the
// field.
absl::Status Apply(const fetch::v1::HostRule& from, absl::string_view where,
                   pol::HostRule& rule) {
  rule.name = from.name();
  rule.hosts.assign(from.hosts().begin(), from.hosts().end());
  if (from.has_max_concurrency()) rule.max_concurrency = from.max_concurrency();
  if (from.has_rate()) rule.rate = from.rate();
  if (from.has_burst()) rule.burst = from.burst();
  if (from.has_max_queue()) rule.max_queue = from.max_queue();
  if (from.has_adaptive()) rule.adaptive = from.adaptive();
  const fetch::v1::Breaker& b = from.breaker();
  if (b.has_consecutive_failures()) {
    rule.breaker.consecutive_failures = b.consecutive_failures();
  }
  if (b.has_half_open_probes()) {
    rule.breaker.half_open_probes = b.half_open_probes();
  }
  const fetch::v1::RetryBudget& r = from.retry_budget();
  if (r.has_ratio()) rule.retry_budget.ratio = r.ratio();
  if (r.has_min_retry_concurrency()) {
    rule.retry_budget.min_retry_concurrency = r.min_retry_concurrency();
  }
  // Signs and orders are RuleSet::Create's to check, naming the rule.
  const auto duration = [&](bool has, const google::protobuf::Duration& d,
                            absl::string_view field, absl::Duration& to) {
    return ReadDuration(has, d, absl::StrCat(where, ": ", field),
                        /*positive=*/false, to);
  };
  FETCHD_RETURN_IF_ERROR(duration(from.has_min_delay(), from.min_delay(),
                                  "min_delay", rule.min_delay));
  FETCHD_RETURN_IF_ERROR(duration(b.has_base_open_time(), b.base_open_time(),
                                  "breaker.base_open_time",
                                  rule.breaker.base_open_time));
  return duration(b.has_max_open_time(), b.max_open_time(),
                  "breaker.max_open_time", rule.breaker.max_open_time);
}

}  // namespace

absl::StatusOr<std::shared_ptr<const pol::RuleSet>> PolitenessRules(
    const fetch::v1::ServerConfig& config) {
  const fetch::v1::Politeness& p = config.politeness();
  pol::HostRule base;
  base.name = "default";
  base.max_concurrency = static_cast<int>(config.limits().max_per_host());
  // Every request the server admits may wait: a bound below max_pending is
  // the operator's choice, not a surprise for a large batch.
  base.max_queue = static_cast<int>(
      std::min<uint32_t>(config.limits().max_pending(), 1 << 30));
  base.breaker.consecutive_failures = 0;
  FETCHD_RETURN_IF_ERROR(Apply(p.default_(), "politeness.default", base));
  if (base.name.empty()) base.name = "default";

  std::vector<pol::HostRule> rules;
  rules.reserve(p.rules_size());
  for (int i = 0; i < p.rules_size(); ++i) {
    pol::HostRule rule = base;
    FETCHD_RETURN_IF_ERROR(Apply(
        p.rules(i),
        absl::StrCat("politeness.rules[", i, "] \"", p.rules(i).name(), "\""),
        rule));
    rules.push_back(std::move(rule));
  }
  absl::StatusOr<pol::RuleSet> set =
      pol::RuleSet::Create(std::move(base), std::move(rules));
  if (!set.ok()) return set.status();
  return std::make_shared<const pol::RuleSet>(*std::move(set));
}

absl::StatusOr<pol::HostBackoffConfig> PolitenessPause(
    const fetch::v1::ServerConfig& config) {
  const fetch::v1::HostPause& p = config.politeness().pause();
  pol::HostBackoffConfig pause;
  const auto duration = [](bool has, const google::protobuf::Duration& d,
                           absl::string_view field, absl::Duration& to) {
    return ReadDuration(has, d, absl::StrCat("politeness.pause.", field),
                        /*positive=*/true, to);
  };
  FETCHD_RETURN_IF_ERROR(duration(p.has_max_retry_after(), p.max_retry_after(),
                                  "max_retry_after", pause.max_retry_after));
  FETCHD_RETURN_IF_ERROR(duration(p.has_base_pause(), p.base_pause(),
                                  "base_pause", pause.base_pause));
  FETCHD_RETURN_IF_ERROR(
      duration(p.has_max_pause(), p.max_pause(), "max_pause", pause.max_pause));
  if (p.has_consecutive_throttles()) {
    if (p.consecutive_throttles() < 0) {
      return absl::InvalidArgumentError(
          "politeness.pause.consecutive_throttles: must be >= 0");
    }
    pause.consecutive_throttles = p.consecutive_throttles();
  }
  if (pause.max_pause < pause.base_pause) {
    return absl::InvalidArgumentError(
        "politeness.pause.max_pause: must be >= base_pause");
  }
  return pause;
}

}  // namespace fetchd::config
