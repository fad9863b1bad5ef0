#include "service/core/politeness/circuit_breaker.h"

#include <algorithm>

namespace fetchd::core::politeness {
namespace {

constexpr int kMaxTrips = 64;

}  // namespace

const char* BreakerStateName(BreakerState state) {
  switch (state) {
    case BreakerState::kClosed:
      return "closed";
    case BreakerState::kOpen:
      return "open";
    case BreakerState::kHalfOpen:
      return "half_open";
  }
  return "closed";
}

CircuitBreaker::Decision CircuitBreaker::Peek(absl::Time now) const {
  using Kind = Decision::Kind;
  switch (state_) {
    case BreakerState::kClosed:
      return {Kind::kAllow, absl::InfinitePast(), std::nullopt};
    case BreakerState::kOpen:
      if (now < open_until_) return {Kind::kReject, open_until_, std::nullopt};
      // The first admit after the open time moves to half-open.
      return {config_.half_open_probes > 0 ? Kind::kProbe : Kind::kReject,
              absl::InfiniteFuture(), BreakerState::kHalfOpen};
    case BreakerState::kHalfOpen:
      if (probes_ < config_.half_open_probes) {
        return {Kind::kProbe, absl::InfinitePast(), std::nullopt};
      }
      return {Kind::kReject, absl::InfiniteFuture(), std::nullopt};
  }
  return {};
}

CircuitBreaker::Decision CircuitBreaker::Admit(absl::Time now) {
  Decision decision = Peek(now);
  if (decision.entered.has_value()) state_ = *decision.entered;
  if (decision.kind == Decision::Kind::kProbe) ++probes_;
  return decision;
}

std::optional<BreakerState> CircuitBreaker::Record(BreakerOutcome outcome,
                                                   bool probe, absl::Time now) {
  if (probe) {
    probes_ = std::max(probes_ - 1, 0);
    // A probe of an earlier half-open period: ignored like any stale result.
    if (state_ != BreakerState::kHalfOpen) return std::nullopt;
    switch (outcome) {
      case BreakerOutcome::kNeutral:
        return std::nullopt;
      case BreakerOutcome::kFailure:
        Trip(now);
        return BreakerState::kOpen;
      case BreakerOutcome::kSuccess:
        state_ = BreakerState::kClosed;
        failures_ = 0;
        successes_ = 1;
        if (successes_ >= config_.consecutive_failures) trips_ = 0;
        return BreakerState::kClosed;
    }
    return std::nullopt;
  }
  if (state_ != BreakerState::kClosed || !enabled()) return std::nullopt;
  switch (outcome) {
    case BreakerOutcome::kNeutral:
      return std::nullopt;
    case BreakerOutcome::kSuccess:
      failures_ = 0;
      // Counted only up to the reset point: no overflow.
      if (trips_ > 0 && ++successes_ >= config_.consecutive_failures) {
        trips_ = 0;
        successes_ = 0;
      }
      return std::nullopt;
    case BreakerOutcome::kFailure:
      successes_ = 0;
      if (++failures_ < config_.consecutive_failures) return std::nullopt;
      Trip(now);
      return BreakerState::kOpen;
  }
  return std::nullopt;
}

void CircuitBreaker::Trip(absl::Time now) {
  absl::Duration open_time = config_.base_open_time;
  for (int i = 0; i < trips_ && open_time < config_.max_open_time; ++i) {
    open_time *= 2;
  }
  open_time = std::min(open_time, config_.max_open_time);
  // Bounded, so that counting never overflows; past the cap more trips
  // change nothing anyway.
  trips_ = std::min(trips_ + 1, kMaxTrips);
  state_ = BreakerState::kOpen;
  open_until_ = now + open_time;
  failures_ = 0;
  successes_ = 0;
}

}  // namespace fetchd::core::politeness
