// HostLimiter: the one seam through which the scheduler asks whether a
// request to a host may start - concurrency, rate and least delay, the
// host-wide pause after 429/503, the circuit breaker, the retry budget and
// the adaptive limit - and tells how each attempt ended. Transport and api
// never call it.
//
// The scheduler calls, for a job of host key K (scheme://host:port):
//   CheckQueue(K, waiting, now)   before queueing it: a full queue or an
//                                 open breaker refuse it at once
//   Reserve(K, now)               when it could start; kGo hands out a
//                                 Permit, kWait says when to ask again
//   Release(K, permit, result, now)  exactly once per kGo, when the attempt
//                                 ends however it ends
//   TryRetry(K, now) / EndRetry(K, now)  around a retry: from the decision
//                                 (before its backoff) to the end of its
//                                 attempt, or its removal while waiting
//   NextReady(K, now)             when to look at K's queue again
//   NoteWaited(K, reason)         a request met a rate or pause wait at K
//                                 (once per request and reason: a metric)
// A batch's own stricter limits (Stricter(Rule(K), ask)) are the
// scheduler's to keep per batch lane: everything here is per host key.
//
// Time is passed in as `now` (a monotonic clock's); implementations never
// read a clock.
// Thread-safety: an instance belongs to one worker thread, which makes all
// calls; no locks. The local implementation keeps the state of the hosts
// sharded to its worker; a shared one (leases from a store) replaces it
// without changing callers.
#ifndef FETCHD_SERVICE_CORE_POLITENESS_HOST_LIMITER_H_
#define FETCHD_SERVICE_CORE_POLITENESS_HOST_LIMITER_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/core/politeness/rule.h"

namespace fetchd::core::politeness {

// How an attempt ended, as politeness sees it.
struct AttemptResult {
  enum class Kind {
    // A response arrived: `status` (and `retry_after`) say which.
    kResponse,
    // No connection: DNS, connect or TLS handshake failed.
    kConnectFailed,
    // Connect or transfer timeout.
    kTimedOut,
    // Ended for reasons of its own (cancelled, denied by policy, over one of
    // fetchd's limits): counts for nothing.
    kAborted,
  };
  Kind kind = Kind::kResponse;
  int status = 0;
  // The response's Retry-After (CURLINFO_RETRY_AFTER), when it had one.
  std::optional<absl::Duration> retry_after;
};

// Handed out with kGo; Release takes it back.
struct Permit {
  // The attempt is one of a half-open breaker's probes.
  bool probe = false;
};

// Why a request must wait (a bounded label; also what its result reports).
enum class WaitReason {
  // The host's concurrency (or adaptive) limit is reached.
  kConcurrency,
  // The rate or the least delay between starts.
  kRate,
  // The host-wide pause after 429/503.
  kPaused,
};

enum class RejectReason { kCircuitOpen, kQueueFull };

struct Rejection {
  RejectReason reason = RejectReason::kCircuitOpen;
  // kCircuitOpen: when the breaker admits again; a request that asked to
  // wait may be kept until then. InfiniteFuture: when a probe ends.
  absl::Time until = absl::InfiniteFuture();
  // For the result's error message; names the rule and the setting.
  std::string message;
};

struct Admission {
  enum class Kind { kGo, kWait, kReject };
  Kind kind = Kind::kGo;
  // kGo.
  Permit permit;
  // kWait: ask again then; InfiniteFuture: after the next Release at this
  // host (a concurrency wait).
  absl::Time until = absl::InfinitePast();
  WaitReason wait_reason = WaitReason::kConcurrency;
  // kReject.
  Rejection rejection;
};

// Per rule (a bounded metric label), never per host.
struct RuleStats {
  std::string rule;
  // The rule has adaptive concurrency on.
  bool adaptive = false;
  // Gauges as of the `now` of Stats(), over the host keys with state.
  int hosts = 0;
  int hosts_paused = 0;
  int breakers_open = 0;
  int breakers_half_open = 0;
  // Lowest current concurrency limit of the rule's hosts (its
  // max_concurrency when no host is below it).
  int adaptive_limit_min = 0;
  // Counters since the limiter was made.
  // Requests that waited for a rate or least delay / for a pause.
  uint64_t rate_limited_requests = 0;
  uint64_t paused_requests = 0;
  uint64_t backoffs_started = 0;
  uint64_t breaker_opened = 0;
  uint64_t breaker_half_opened = 0;
  uint64_t breaker_closed = 0;
  uint64_t retries_denied = 0;

  // Adds another limiter's stats of the same rule (another worker's).
  void Add(const RuleStats& other) {
    hosts += other.hosts;
    hosts_paused += other.hosts_paused;
    breakers_open += other.breakers_open;
    breakers_half_open += other.breakers_half_open;
    adaptive_limit_min = std::min(adaptive_limit_min, other.adaptive_limit_min);
    rate_limited_requests += other.rate_limited_requests;
    paused_requests += other.paused_requests;
    backoffs_started += other.backoffs_started;
    breaker_opened += other.breaker_opened;
    breaker_half_opened += other.breaker_half_opened;
    breaker_closed += other.breaker_closed;
    retries_denied += other.retries_denied;
  }
};

class HostLimiter {
 public:
  virtual ~HostLimiter() = default;

  // The rule of `host_key`: its name labels metrics, its max_queue bounds
  // the host's queue, and a batch's ask is checked against it.
  [[nodiscard]] virtual const HostRule& Rule(
      absl::string_view host_key) const = 0;

  // Whether one more request may queue for `host_key`, where `waiting`
  // already wait: nullopt, or kQueueFull (waiting >= max_queue; checked
  // first) or kCircuitOpen (the breaker admits nothing now; the scheduler
  // may still queue a request that asked to wait for it).
  [[nodiscard]] virtual std::optional<Rejection> CheckQueue(
      absl::string_view host_key, size_t waiting, absl::Time now) const = 0;

  // Whether an attempt at `host_key` may start at `now`. Checked in this
  // order: breaker (kReject), pause, concurrency, rate and least delay
  // (kWait). kGo takes the concurrency slot and the rate token.
  [[nodiscard]] virtual Admission Reserve(absl::string_view host_key,
                                          absl::Time now) = 0;

  // The attempt admitted with `permit` ended with `result` at `now`.
  // Returns false, changing nothing, when `host_key` has no attempt in
  // flight (a caller bug to log).
  [[nodiscard]] virtual bool Release(absl::string_view host_key,
                                     const Permit& permit,
                                     const AttemptResult& result,
                                     absl::Time now) = 0;

  // Takes a place in the host's retry budget for one retry, or returns
  // ResourceExhausted with a message naming the rule and the budget (the
  // retry is then not made; the request's result keeps its last error).
  [[nodiscard]] virtual absl::Status TryRetry(absl::string_view host_key,
                                              absl::Time now) = 0;
  // The retry TryRetry allowed has ended (or was dropped).
  virtual void EndRetry(absl::string_view host_key, absl::Time now) = 0;

  // The earliest time >= now at which Reserve could say kGo, leaving out the
  // concurrency limit (which frees on Release): the end of a pause, of an
  // open breaker, of a rate wait; InfiniteFuture while half-open with every
  // probe out.
  [[nodiscard]] virtual absl::Time NextReady(absl::string_view host_key,
                                             absl::Time now) const = 0;

  // A request waiting for `host_key` met a wait of `reason` (kRate or
  // kPaused) for the first time; counted per rule in Stats.
  virtual void NoteWaited(absl::string_view host_key, WaitReason reason) = 0;

  // One entry per rule, in RuleSet order (the default rule last).
  [[nodiscard]] virtual std::vector<RuleStats> Stats(absl::Time now) const = 0;

  // The hosts whose wait the limiter ended without an attempt's end (a
  // shared limiter got what they waited for); the scheduler looks at them
  // again. A limiter that can end waits so also wakes its worker.
  [[nodiscard]] virtual std::vector<std::string> TakeWoken() { return {}; }
};

}  // namespace fetchd::core::politeness

#endif  // FETCHD_SERVICE_CORE_POLITENESS_HOST_LIMITER_H_
