#include "service/core/politeness/local_host_limiter.h"

#include <algorithm>
#include <cassert>
#include <utility>

#include "absl/strings/str_cat.h"

namespace fetchd::core::politeness {
namespace {

std::string RuleLabel(const HostRule& rule) {
  return absl::StrCat("politeness rule \"", rule.name, "\"");
}

}  // namespace

LocalHostLimiter::Host::Host(size_t index, const HostRule& host_rule,
                             const HostBackoffConfig& backoff_config,
                             bool rate_elsewhere, absl::Time now)
    : rule_index(index),
      rule(&host_rule),
      rate(rate_elsewhere ? 0 : host_rule.rate, host_rule.burst,
           host_rule.min_delay),
      backoff(backoff_config),
      breaker(host_rule.breaker),
      budget(host_rule.retry_budget),
      adaptive(host_rule.max_concurrency),
      last_activity(now) {}

LocalHostLimiter::LocalHostLimiter(std::shared_ptr<const RuleSet> rules,
                                   const Options& options)
    : rules_(std::move(rules)), options_(options), counters_(rules_->size()) {}

absl::Time LocalHostLimiter::PausedUntil(absl::string_view host_key) const {
  auto it = hosts_.find(host_key);
  return it == hosts_.end() ? absl::InfinitePast()
                            : it->second.backoff.paused_until();
}

const HostRule& LocalHostLimiter::Rule(absl::string_view host_key) const {
  auto it = hosts_.find(host_key);
  if (it != hosts_.end()) return *it->second.rule;
  return rules_->MatchKey(host_key);
}

LocalHostLimiter::Host& LocalHostLimiter::GetOrCreate(
    absl::string_view host_key, absl::Time now) {
  auto it = hosts_.find(host_key);
  if (it != hosts_.end()) return it->second;
  const size_t index = rules_->MatchKeyIndex(host_key);
  return hosts_
      .try_emplace(std::string(host_key), index, rules_->rule(index),
                   options_.backoff, options_.rate_elsewhere, now)
      .first->second;
}

int LocalHostLimiter::Concurrency(const Host& host) const {
  return host.rule->adaptive ? host.adaptive.limit()
                             : host.rule->max_concurrency;
}

void LocalHostLimiter::CountTransition(size_t rule_index,
                                       std::optional<BreakerState> entered) {
  if (!entered.has_value()) return;
  Counters& counters = counters_[rule_index];
  switch (*entered) {
    case BreakerState::kOpen:
      ++counters.breaker_opened;
      break;
    case BreakerState::kHalfOpen:
      ++counters.breaker_half_opened;
      break;
    case BreakerState::kClosed:
      ++counters.breaker_closed;
      break;
  }
}

Rejection LocalHostLimiter::CircuitOpen(absl::string_view host_key,
                                        const Host& host, absl::Time until,
                                        absl::Time now) const {
  const BreakerConfig& config = host.rule->breaker;
  std::string message = absl::StrCat(
      RuleLabel(*host.rule), ": circuit breaker of ", host_key, " is open (",
      config.consecutive_failures, " failures in a row; breaker.*)");
  if (until == absl::InfiniteFuture()) {
    absl::StrAppend(&message, "; half-open, its probe is in flight");
  } else {
    absl::StrAppend(&message, "; next probe in ",
                    absl::FormatDuration(until - now));
  }
  return Rejection{RejectReason::kCircuitOpen, until, std::move(message)};
}

std::optional<Rejection> LocalHostLimiter::CheckQueue(
    absl::string_view host_key, size_t waiting, absl::Time now) const {
  // A full queue first: a request that may wait for an open breaker still
  // needs room to wait. A host with state knows its rule already.
  const auto it = hosts_.find(host_key);
  const HostRule& rule = it != hosts_.end() ? *it->second.rule : Rule(host_key);
  if (waiting >= static_cast<size_t>(rule.max_queue)) {
    return Rejection{
        RejectReason::kQueueFull, absl::InfiniteFuture(),
        absl::StrCat("queue full: ", RuleLabel(rule), ": ", waiting,
                     " requests already wait for ", host_key, " (max_queue ",
                     rule.max_queue, ")")};
  }
  if (it != hosts_.end()) {
    const CircuitBreaker::Decision decision = it->second.breaker.Peek(now);
    if (decision.kind == CircuitBreaker::Decision::Kind::kReject) {
      return CircuitOpen(host_key, it->second, decision.until, now);
    }
  }
  return std::nullopt;
}

Admission LocalHostLimiter::Reserve(absl::string_view host_key,
                                    absl::Time now) {
  MaybeSweep(now);
  Host& host = GetOrCreate(host_key, now);
  Admission admission;
  const CircuitBreaker::Decision peek = host.breaker.Peek(now);
  if (peek.kind == CircuitBreaker::Decision::Kind::kReject) {
    admission.kind = Admission::Kind::kReject;
    admission.rejection = CircuitOpen(host_key, host, peek.until, now);
    return admission;
  }
  admission.kind = Admission::Kind::kWait;
  if (host.backoff.Paused(now)) {
    admission.until = host.backoff.paused_until();
    admission.wait_reason = WaitReason::kPaused;
    return admission;
  }
  if (host.active >= Concurrency(host)) {
    admission.until = absl::InfiniteFuture();
    admission.wait_reason = WaitReason::kConcurrency;
    return admission;
  }
  if (const absl::Time next = host.rate.NextAllowed(now); next > now) {
    admission.until = next;
    admission.wait_reason = WaitReason::kRate;
    return admission;
  }
  // Peek allowed it, so Admit does too; it may move open to half-open.
  const CircuitBreaker::Decision decision = host.breaker.Admit(now);
  CountTransition(host.rule_index, decision.entered);
  host.rate.Take(now);
  ++host.active;
  host.last_activity = now;
  admission.kind = Admission::Kind::kGo;
  admission.permit.probe =
      decision.kind == CircuitBreaker::Decision::Kind::kProbe;
  return admission;
}

bool LocalHostLimiter::Release(absl::string_view host_key, const Permit& permit,
                               const AttemptResult& result, absl::Time now) {
  auto it = hosts_.find(host_key);
  if (it == hosts_.end() || it->second.active <= 0) {
    assert(false && "Release without an attempt in flight");
    return false;
  }
  Host& host = it->second;
  --host.active;
  host.last_activity = now;
  BreakerOutcome breaker = BreakerOutcome::kNeutral;
  LoadSignal load = LoadSignal::kNeutral;
  switch (result.kind) {
    case AttemptResult::Kind::kResponse: {
      if (host.backoff.OnResponse(result.status, result.retry_after, now)) {
        ++counters_[host.rule_index].backoffs_started;
      }
      const bool throttle = result.status == 429 || result.status == 503;
      breaker = result.status >= 500 ? BreakerOutcome::kFailure
                                     : BreakerOutcome::kSuccess;
      if (throttle) {
        load = LoadSignal::kOverload;
      } else if (result.status < 500) {
        load = LoadSignal::kSuccess;
      }
      break;
    }
    case AttemptResult::Kind::kConnectFailed:
      breaker = BreakerOutcome::kFailure;
      break;
    case AttemptResult::Kind::kTimedOut:
      breaker = BreakerOutcome::kFailure;
      load = LoadSignal::kOverload;
      break;
    case AttemptResult::Kind::kAborted:
      break;
  }
  CountTransition(host.rule_index,
                  host.breaker.Record(breaker, permit.probe, now));
  if (host.rule->adaptive) host.adaptive.Record(load);
  MaybeSweep(now);
  return true;
}

absl::Status LocalHostLimiter::TryRetry(absl::string_view host_key,
                                        absl::Time now) {
  Host& host = GetOrCreate(host_key, now);
  if (host.budget.TryStartRetry(host.active)) {
    host.last_activity = now;
    return absl::OkStatus();
  }
  ++counters_[host.rule_index].retries_denied;
  return absl::ResourceExhaustedError(
      absl::StrCat(RuleLabel(*host.rule), ": ",
                   host.budget.DenialMessage(host.active), " at ", host_key));
}

void LocalHostLimiter::EndRetry(absl::string_view host_key, absl::Time now) {
  auto it = hosts_.find(host_key);
  if (it == hosts_.end() || it->second.budget.outstanding() <= 0) {
    assert(false && "EndRetry without a retry outstanding");
    return;
  }
  it->second.budget.EndRetry();
  it->second.last_activity = now;
}

absl::Time LocalHostLimiter::NextReady(absl::string_view host_key,
                                       absl::Time now) const {
  auto it = hosts_.find(host_key);
  if (it == hosts_.end()) return now;
  const Host& host = it->second;
  const CircuitBreaker::Decision peek = host.breaker.Peek(now);
  if (peek.kind == CircuitBreaker::Decision::Kind::kReject) return peek.until;
  return std::max(
      {now, host.backoff.paused_until(), host.rate.NextAllowed(now)});
}

void LocalHostLimiter::NoteWaited(absl::string_view host_key,
                                  WaitReason reason) {
  // Reserve gave the host its state when it said wait.
  const auto it = hosts_.find(host_key);
  Counters& counters =
      counters_[it != hosts_.end() ? it->second.rule_index
                                   : rules_->MatchKeyIndex(host_key)];
  if (reason == WaitReason::kRate) ++counters.rate_limited_requests;
  if (reason == WaitReason::kPaused) ++counters.paused_requests;
}

std::vector<RuleStats> LocalHostLimiter::Stats(absl::Time now) const {
  std::vector<RuleStats> stats(rules_->size());
  for (size_t i = 0; i < stats.size(); ++i) {
    const Counters& counters = counters_[i];
    stats[i].rule = rules_->rule(i).name;
    stats[i].adaptive = rules_->rule(i).adaptive;
    stats[i].adaptive_limit_min = rules_->rule(i).max_concurrency;
    stats[i].rate_limited_requests = counters.rate_limited_requests;
    stats[i].paused_requests = counters.paused_requests;
    stats[i].backoffs_started = counters.backoffs_started;
    stats[i].breaker_opened = counters.breaker_opened;
    stats[i].breaker_half_opened = counters.breaker_half_opened;
    stats[i].breaker_closed = counters.breaker_closed;
    stats[i].retries_denied = counters.retries_denied;
  }
  for (const auto& [key, host] : hosts_) {
    RuleStats& s = stats[host.rule_index];
    ++s.hosts;
    if (host.backoff.Paused(now)) ++s.hosts_paused;
    // As Admit would see it: open past its time is half-open.
    const CircuitBreaker::Decision peek = host.breaker.Peek(now);
    const BreakerState state = peek.entered.value_or(host.breaker.state());
    if (state == BreakerState::kOpen) ++s.breakers_open;
    if (state == BreakerState::kHalfOpen) ++s.breakers_half_open;
    s.adaptive_limit_min = std::min(s.adaptive_limit_min, Concurrency(host));
  }
  return stats;
}

bool LocalHostLimiter::Idle(const Host& host, absl::Time now) {
  return host.active == 0 && host.budget.outstanding() == 0 &&
         host.rate.Idle(now) && host.backoff.Idle(now) && host.breaker.Idle() &&
         host.adaptive.Idle();
}

bool LocalHostLimiter::Stale(const Host& host, absl::Time now) const {
  if (Idle(host, now)) return true;
  const bool open = host.breaker.state() == BreakerState::kOpen &&
                    now < host.breaker.open_until();
  return host.active == 0 && host.budget.outstanding() == 0 &&
         host.breaker.probes_in_flight() == 0 && host.rate.Idle(now) &&
         !host.backoff.Paused(now) && !open &&
         now - host.last_activity >= options_.idle_ttl;
}

void LocalHostLimiter::MaybeSweep(absl::Time now) {
  if (now < next_sweep_) return;
  next_sweep_ = now + options_.sweep_interval;
  Sweep(now);
}

void LocalHostLimiter::Sweep(absl::Time now) {
  for (auto it = hosts_.begin(); it != hosts_.end();) {
    if (Stale(it->second, now)) {
      hosts_.erase(it++);
    } else {
      ++it;
    }
  }
}

}  // namespace fetchd::core::politeness
