// AdaptiveLimit: a host's concurrency limit that follows what the host can
// take (AIMD, as Scrapy's AutoThrottle and Netflix's concurrency-limits):
//
// - starts at max_concurrency;
// - an overload signal (429, 503, timeout) halves it, floor 1 - at most once
//   per window: the overload answers of attempts that were in flight when it
//   was halved (as many as the limit was) don't halve it again;
// - every `limit` successes in a row raise it by one, up to
//   max_concurrency (one step per window of successes).
//
// Thread-safety: none; one worker thread owns each instance.
#ifndef FETCHD_SERVICE_CORE_POLITENESS_ADAPTIVE_LIMIT_H_
#define FETCHD_SERVICE_CORE_POLITENESS_ADAPTIVE_LIMIT_H_

namespace fetchd::core::politeness {

// kNeutral: neither (other failures, cancelled attempts).
enum class LoadSignal { kSuccess, kOverload, kNeutral };

class AdaptiveLimit {
 public:
  // `max_concurrency` >= 1.
  explicit AdaptiveLimit(int max_concurrency)
      : max_(max_concurrency), limit_(max_concurrency) {}

  // Returns true when the limit changed.
  bool Record(LoadSignal signal);

  int limit() const { return limit_; }
  int max() const { return max_; }
  bool Idle() const { return limit_ == max_ && ignore_ == 0; }

 private:
  const int max_;
  int limit_;
  // Successes in a row since the last change.
  int successes_ = 0;
  // Results still to come from the window of the last decrease.
  int ignore_ = 0;
};

}  // namespace fetchd::core::politeness

#endif  // FETCHD_SERVICE_CORE_POLITENESS_ADAPTIVE_LIMIT_H_
