// CircuitBreaker: stops sending to a host that keeps failing (Envoy's
// outlier detection, with a half-open state):
//
//   closed ──(consecutive_failures failures in a row)──> open
//   open ──(open time over; the next Admit)──> half-open
//   half-open ──(a probe succeeds)──> closed
//   half-open ──(a probe fails)──> open, for a longer time
//
// The n-th trip in a row (n = 0, 1, ...) stays open for
// min(base_open_time * 2^n, max_open_time). The trip count is kept after a
// recovery, so a host that flaps keeps its long open time, and resets once
// the closed breaker has seen consecutive_failures successes in a row (at
// least one).
// Half-open admits at most half_open_probes attempts at once; the others
// are refused until a probe ends. Only probes decide half-open's outcome:
// results of attempts admitted before the breaker opened are ignored while
// it is open or half-open. A probe that ends neither way (cancelled, or
// stopped by fetchd's own limits) frees its place and changes nothing.
// consecutive_failures 0: the breaker never opens.
//
// Time is passed in; the breaker never reads a clock.
// Thread-safety: none; one worker thread owns each instance.
#ifndef FETCHD_SERVICE_CORE_POLITENESS_CIRCUIT_BREAKER_H_
#define FETCHD_SERVICE_CORE_POLITENESS_CIRCUIT_BREAKER_H_

#include <optional>

#include "absl/time/time.h"
#include "service/core/politeness/rule.h"

namespace fetchd::core::politeness {

enum class BreakerState { kClosed, kOpen, kHalfOpen };

// "closed", "open", "half_open": a metric label.
[[nodiscard]] const char* BreakerStateName(BreakerState state);

// What an attempt tells the breaker: kFailure for a connect error, a
// timeout or a 5xx; kSuccess for any other response; kNeutral when the
// attempt ended for reasons of its own (cancelled, over a limit).
enum class BreakerOutcome { kSuccess, kFailure, kNeutral };

class CircuitBreaker {
 public:
  struct Decision {
    enum class Kind { kAllow, kProbe, kReject };
    Kind kind = Kind::kAllow;
    // kReject: when the open time ends; InfiniteFuture while half-open with
    // every probe out (until one ends).
    absl::Time until = absl::InfinitePast();
    // The state this call moved the breaker to (open -> half-open), if any.
    std::optional<BreakerState> entered;
  };

  explicit CircuitBreaker(const BreakerConfig& config) : config_(config) {}

  // Whether an attempt may start at `now`. kProbe: it is one of half-open's
  // probes; pass probe = true to Record when it ends.
  Decision Admit(absl::Time now);
  // What Admit(now) would answer, changing nothing.
  [[nodiscard]] Decision Peek(absl::Time now) const;

  // An attempt ended at `now`. Returns the state entered, if it changed.
  std::optional<BreakerState> Record(BreakerOutcome outcome, bool probe,
                                     absl::Time now);

  // The state as of the last Admit or Record (open stays open past its time
  // until an Admit moves it to half-open).
  BreakerState state() const { return state_; }
  absl::Time open_until() const { return open_until_; }
  int trips() const { return trips_; }
  int probes_in_flight() const { return probes_; }
  // Whether the state is that of a new instance.
  bool Idle() const {
    return state_ == BreakerState::kClosed && failures_ == 0 && trips_ == 0 &&
           probes_ == 0;
  }

 private:
  bool enabled() const { return config_.consecutive_failures > 0; }
  void Trip(absl::Time now);

  const BreakerConfig config_;
  BreakerState state_ = BreakerState::kClosed;
  // Closed: failures and successes in a row.
  int failures_ = 0;
  int successes_ = 0;
  // Trips since the last reset; the next open time is base * 2^trips_.
  int trips_ = 0;
  absl::Time open_until_ = absl::InfinitePast();
  int probes_ = 0;
};

}  // namespace fetchd::core::politeness

#endif  // FETCHD_SERVICE_CORE_POLITENESS_CIRCUIT_BREAKER_H_
