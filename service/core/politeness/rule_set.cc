#include "service/core/politeness/rule_set.h"

#include <cmath>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace fetchd::core::politeness {
namespace {

constexpr char kDefaultName[] = "default";

// Field checks of one rule. `where` names the rule
// (politeness.rules[2] "api"); the first failure is returned.
class FieldCheck {
 public:
  explicit FieldCheck(std::string where) : where_(std::move(where)) {}

  void Require(bool ok, absl::string_view field, absl::string_view rule) {
    if (ok || !status_.ok()) return;
    status_ = absl::InvalidArgumentError(
        absl::StrCat(where_, ": ", field, ": ", rule));
  }
  absl::Status status() const { return status_; }
  const std::string& where() const { return where_; }

 private:
  std::string where_;
  absl::Status status_;
};

void CheckFields(const HostRule& rule, FieldCheck& check) {
  check.Require(rule.max_concurrency >= 1, "max_concurrency", "must be >= 1");
  check.Require(std::isfinite(rule.rate) && rule.rate >= 0, "rate",
                "must be a number >= 0 (0: unlimited)");
  check.Require(rule.burst >= 0, "burst", "must be >= 0");
  check.Require(!(rule.rate > 0 && rule.burst == 0), "burst",
                "must be >= 1 when rate > 0");
  check.Require(rule.min_delay >= absl::ZeroDuration(), "min_delay",
                "must be >= 0");
  check.Require(rule.max_queue >= 0, "max_queue", "must be >= 0");
  const BreakerConfig& b = rule.breaker;
  check.Require(b.consecutive_failures >= 0, "breaker.consecutive_failures",
                "must be >= 0 (0: no breaker)");
  check.Require(b.base_open_time > absl::ZeroDuration(),
                "breaker.base_open_time", "must be > 0");
  check.Require(b.max_open_time >= b.base_open_time, "breaker.max_open_time",
                absl::StrCat("must be >= breaker.base_open_time (",
                             absl::FormatDuration(b.base_open_time), ")"));
  check.Require(b.half_open_probes >= 1, "breaker.half_open_probes",
                "must be >= 1");
  const RetryBudgetConfig& r = rule.retry_budget;
  // Written so that NaN fails too.
  check.Require(r.ratio >= 0 && r.ratio <= 1, "retry_budget.ratio",
                "must be in [0, 1]");
  check.Require(r.min_retry_concurrency >= 0,
                "retry_budget.min_retry_concurrency", "must be >= 0");
}

std::string RuleWhere(size_t index, absl::string_view name) {
  return absl::StrCat("politeness.rules[", index, "] \"",
                      absl::CHexEscape(name), "\"");
}

}  // namespace

RuleSet::RuleSet() {
  rules_.emplace_back();
  rules_.back().name = kDefaultName;
}

absl::StatusOr<RuleSet> RuleSet::Create(HostRule default_rule,
                                        std::vector<HostRule> rules) {
  if (default_rule.name.empty()) default_rule.name = kDefaultName;
  FieldCheck default_check("politeness.default");
  default_check.Require(default_rule.hosts.empty(), "hosts",
                        "the default rule is for hosts no rule matches; it "
                        "takes no patterns");
  CheckFields(default_rule, default_check);
  if (!default_check.status().ok()) return default_check.status();

  RuleSet set;
  set.rules_.clear();
  absl::flat_hash_map<std::string, size_t> names = {{default_rule.name, 0}};
  for (size_t i = 0; i < rules.size(); ++i) {
    const HostRule& rule = rules[i];
    FieldCheck check(RuleWhere(i, rule.name));
    check.Require(!rule.name.empty(), "name", "must not be empty");
    if (auto [it, fresh] = names.try_emplace(rule.name, i); !fresh) {
      check.Require(false, "name",
                    rule.name == default_rule.name
                        ? "is the default rule's name"
                        : absl::StrCat("is also the name of ",
                                       RuleWhere(it->second, rule.name)));
    }
    check.Require(!rule.hosts.empty(), "hosts",
                  "must list at least one pattern");
    CheckFields(rule, check);
    if (!check.status().ok()) return check.status();

    std::vector<Entry> entries;
    for (size_t h = 0; h < rule.hosts.size(); ++h) {
      const std::string field = absl::StrCat(
          "hosts[", h, "] \"", absl::CHexEscape(rule.hosts[h]), "\"");
      absl::StatusOr<HostPattern> pattern = HostPattern::Parse(rule.hosts[h]);
      if (!pattern.ok()) {
        check.Require(false, field, pattern.status().message());
        return check.status();
      }
      for (const Entry& seen : entries) {
        if (seen.pattern.host() == pattern->host() &&
            seen.pattern.wildcard() == pattern->wildcard() &&
            seen.pattern.scheme() == pattern->scheme() &&
            seen.pattern.port() == pattern->port()) {
          check.Require(
              false, field,
              absl::StrCat("listed twice (hosts[", seen.host_index, "])"));
          return check.status();
        }
      }
      const Entry* earlier = set.Find(
          pattern->host(), pattern->wildcard(),
          [&](const Entry& e) { return pattern->ShadowedBy(e.pattern); });
      if (earlier != nullptr) {
        check.Require(
            false, field,
            absl::StrCat("never matches: ",
                         RuleWhere(earlier->rule, rules[earlier->rule].name),
                         " hosts[", earlier->host_index, "] \"",
                         absl::CHexEscape(earlier->pattern.text()),
                         "\" covers it and comes first (first match wins: "
                         "put the more specific rule first)"));
        return check.status();
      }
      entries.push_back(Entry{i, h, *std::move(pattern)});
    }
    // A rule's own patterns are indexed together, after all were checked
    // against the earlier rules' only.
    for (Entry& entry : entries) {
      Index& index = entry.pattern.wildcard() ? set.wildcard_ : set.exact_;
      index[entry.pattern.host()].push_back(std::move(entry));
    }
  }
  set.rules_ = std::move(rules);
  set.rules_.push_back(std::move(default_rule));
  return set;
}

template <typename Accept>
const RuleSet::Entry* RuleSet::Find(absl::string_view host, bool wildcard_host,
                                    const Accept& accept) const {
  const Entry* best = nullptr;
  const auto scan = [&](const Index& index, absl::string_view key) {
    auto it = index.find(key);
    if (it == index.end()) return;
    // Each list is in rule order: its first accepted entry is its best.
    for (const Entry& entry : it->second) {
      if (best != nullptr && entry.rule >= best->rule) return;
      if (accept(entry)) {
        best = &entry;
        return;
      }
    }
  };
  // "*.s" never matches "s" itself, but shadows another "*.s".
  scan(wildcard_host ? wildcard_ : exact_, host);
  for (size_t dot = host.find('.'); dot != absl::string_view::npos;
       dot = host.find('.', dot + 1)) {
    scan(wildcard_, host.substr(dot + 1));
  }
  return best;
}

size_t RuleSet::MatchIndex(absl::string_view scheme, absl::string_view host,
                           int port) const {
  const Entry* entry = Find(host, /*wildcard_host=*/false, [&](const Entry& e) {
    return e.pattern.Matches(scheme, host, port);
  });
  return entry == nullptr ? default_index() : entry->rule;
}

size_t RuleSet::MatchKeyIndex(absl::string_view host_key) const {
  std::optional<HostKeyParts> parts = SplitHostKey(host_key);
  if (!parts.has_value()) return default_index();
  return MatchIndex(parts->scheme, parts->host, parts->port);
}

}  // namespace fetchd::core::politeness
