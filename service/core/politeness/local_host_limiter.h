// LocalHostLimiter: the HostLimiter of one replica. Each worker owns one,
// over the host keys sharded to it; limits are therefore per replica.
//
// Each host key gets its state when first used: its rule (first match in
// the RuleSet), attempts in flight, a RateLimiter, a HostBackoff, a
// CircuitBreaker, a RetryBudget and, for adaptive rules, an AdaptiveLimit.
// Memory stays bounded with many hosts: a sweep every sweep_interval drops
// the state of the hosts that are as good as new (nothing in flight or
// outstanding, rate and delay caught up, no pause, breaker closed and
// clean, adaptive limit at its max), and of those at which nothing has
// happened for idle_ttl and that nothing holds (no attempt in flight, no
// retry outstanding, rate caught up, no pause running, breaker not open):
// a failure streak under the threshold or a lowered adaptive limit is then
// forgotten. State is not dropped the moment a host goes idle: a busy host
// between two attempts keeps it, so its rule is matched once per sweep
// interval at most, not once per request.
//
// How results count (AttemptResult):
//   breaker:  kConnectFailed, kTimedOut and 5xx fail; other responses
//             succeed; kAborted is neither
//   pause:    429/503 responses (HostBackoff); other responses end the
//             streak; no response changes nothing
//   adaptive: 429, 503 and kTimedOut are overload; responses < 500 other
//             than 429 succeed
//   budget:   `active` is the host's attempts in flight (Reserve..Release)
//
// Time is passed in; the limiter never reads a clock.
// Thread-safety: none; one worker thread owns each instance and makes every
// call. The RuleSet is shared read-only between workers.
#ifndef FETCHD_SERVICE_CORE_POLITENESS_LOCAL_HOST_LIMITER_H_
#define FETCHD_SERVICE_CORE_POLITENESS_LOCAL_HOST_LIMITER_H_

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "service/core/politeness/adaptive_limit.h"
#include "service/core/politeness/circuit_breaker.h"
#include "service/core/politeness/host_backoff.h"
#include "service/core/politeness/host_limiter.h"
#include "service/core/politeness/rate_limiter.h"
#include "service/core/politeness/retry_budget.h"
#include "service/core/politeness/rule_set.h"

namespace fetchd::core::politeness {

class LocalHostLimiter final : public HostLimiter {
 public:
  struct Options {
    // The host-wide pause, for every host whatever its rule.
    HostBackoffConfig backoff;
    absl::Duration idle_ttl = absl::Minutes(10);
    absl::Duration sweep_interval = absl::Seconds(1);
    // The rules' rate is kept by another limiter (the cluster's,
    // cluster::ClusterHostLimiter): only min_delay is kept here.
    bool rate_elsewhere = false;
  };

  // `rules` must not be null.
  LocalHostLimiter(std::shared_ptr<const RuleSet> rules,
                   const Options& options);

  const HostRule& Rule(absl::string_view host_key) const override;
  std::optional<Rejection> CheckQueue(absl::string_view host_key,
                                      size_t waiting,
                                      absl::Time now) const override;
  Admission Reserve(absl::string_view host_key, absl::Time now) override;
  bool Release(absl::string_view host_key, const Permit& permit,
               const AttemptResult& result, absl::Time now) override;
  absl::Status TryRetry(absl::string_view host_key, absl::Time now) override;
  void EndRetry(absl::string_view host_key, absl::Time now) override;
  absl::Time NextReady(absl::string_view host_key,
                       absl::Time now) const override;
  void NoteWaited(absl::string_view host_key, WaitReason reason) override;
  std::vector<RuleStats> Stats(absl::Time now) const override;

  // Drops the state of the hosts the sweep would drop at `now` (see above).
  // Reserve and Release call it every sweep_interval.
  void Sweep(absl::Time now);
  // When the host-wide pause of `host_key` ends (InfinitePast: never
  // paused, or its state was dropped).
  absl::Time PausedUntil(absl::string_view host_key) const;
  // Host keys with state now.
  size_t tracked_hosts() const { return hosts_.size(); }

 private:
  struct Host {
    Host(size_t index, const HostRule& host_rule,
         const HostBackoffConfig& backoff_config, bool rate_elsewhere,
         absl::Time now);

    size_t rule_index;
    const HostRule* rule;
    int active = 0;
    RateLimiter rate;
    HostBackoff backoff;
    CircuitBreaker breaker;
    RetryBudget budget;
    AdaptiveLimit adaptive;
    absl::Time last_activity;
  };
  using HostMap = absl::flat_hash_map<std::string, Host>;
  // Per rule, survives its hosts' state.
  struct Counters {
    uint64_t rate_limited_requests = 0;
    uint64_t paused_requests = 0;
    uint64_t backoffs_started = 0;
    uint64_t breaker_opened = 0;
    uint64_t breaker_half_opened = 0;
    uint64_t breaker_closed = 0;
    uint64_t retries_denied = 0;
  };

  Host& GetOrCreate(absl::string_view host_key, absl::Time now);
  int Concurrency(const Host& host) const;
  void CountTransition(size_t rule_index, std::optional<BreakerState> entered);
  Rejection CircuitOpen(absl::string_view host_key, const Host& host,
                        absl::Time until, absl::Time now) const;
  // Whether the sweep may drop `host` at `now` / it is as good as new.
  bool Stale(const Host& host, absl::Time now) const;
  static bool Idle(const Host& host, absl::Time now);
  void MaybeSweep(absl::Time now);

  const std::shared_ptr<const RuleSet> rules_;
  const Options options_;
  HostMap hosts_;
  std::vector<Counters> counters_;
  absl::Time next_sweep_ = absl::InfinitePast();
};

}  // namespace fetchd::core::politeness

#endif  // FETCHD_SERVICE_CORE_POLITENESS_LOCAL_HOST_LIMITER_H_
