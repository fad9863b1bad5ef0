// RuleSet: the server's politeness rules, validated, and the rule of a host
// key. Rules are tried in order and the first whose `hosts` matches wins;
// a host no rule matches gets the default rule. Matching costs a few hash
// lookups (one per label of the host), not a scan of the rules, so a
// thousand rules are as cheap as one.
//
// Thread-safety: immutable once created; any number of threads may call its
// const methods at once (workers share one through a shared_ptr<const>).
#ifndef FETCHD_SERVICE_CORE_POLITENESS_RULE_SET_H_
#define FETCHD_SERVICE_CORE_POLITENESS_RULE_SET_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "service/core/politeness/host_pattern.h"
#include "service/core/politeness/rule.h"

namespace fetchd::core::politeness {

class RuleSet {
 public:
  // Only a default rule, named "default", with HostRule's defaults.
  RuleSet();

  // Validates `rules` and `default_rule` (an empty default name becomes
  // "default"). InvalidArgument naming the rule and the field, e.g.
  //   politeness.rules[2] "api": rate: must be a number >= 0
  //   politeness.default: breaker.max_open_time: must be >= base_open_time
  // for: an empty or duplicate name; a rule without patterns, or a default
  // rule with some; an invalid pattern; a pattern listed twice in a rule or
  // that can never match because an earlier rule's pattern covers it (first
  // match wins: list the specific rule first); max_concurrency < 1; a
  // negative or non-finite rate; burst < 0, or 0 with rate > 0; negative
  // min_delay; max_queue < 0; breaker.consecutive_failures < 0,
  // base_open_time <= 0, max_open_time < base_open_time,
  // half_open_probes < 1; retry_budget.ratio outside [0, 1],
  // min_retry_concurrency < 0.
  [[nodiscard]] static absl::StatusOr<RuleSet> Create(
      HostRule default_rule, std::vector<HostRule> rules);

  // The index (for rule()) of the rule of a host. `scheme` and `host` are
  // lower-case as in host keys. The default rule is last: default_index().
  [[nodiscard]] size_t MatchIndex(absl::string_view scheme,
                                  absl::string_view host, int port) const;
  // The same for a host key (scheme://host:port); a malformed key gets the
  // default rule.
  [[nodiscard]] size_t MatchKeyIndex(absl::string_view host_key) const;

  [[nodiscard]] const HostRule& Match(absl::string_view scheme,
                                      absl::string_view host, int port) const {
    return rules_[MatchIndex(scheme, host, port)];
  }
  [[nodiscard]] const HostRule& MatchKey(absl::string_view host_key) const {
    return rules_[MatchKeyIndex(host_key)];
  }

  // Rules in config order, then the default: 0 .. size() - 1.
  const HostRule& rule(size_t index) const { return rules_[index]; }
  size_t size() const { return rules_.size(); }
  size_t default_index() const { return rules_.size() - 1; }

 private:
  struct Entry {
    size_t rule;
    size_t host_index;
    HostPattern pattern;
  };
  // Patterns keyed by host (exact) or by suffix (wildcard), in rule order.
  using Index = absl::flat_hash_map<std::string, std::vector<Entry>>;

  // The first entry, in rule order, that matches a host key whose host is
  // `host`, among those `accept` accepts.
  template <typename Accept>
  const Entry* Find(absl::string_view host, bool wildcard_host,
                    const Accept& accept) const;

  std::vector<HostRule> rules_;
  Index exact_;
  Index wildcard_;
};

}  // namespace fetchd::core::politeness

#endif  // FETCHD_SERVICE_CORE_POLITENESS_RULE_SET_H_
