// RetryBudget: how many retries one host may have outstanding (Envoy's and
// Finagle's retry budgets), so that a failing host can't multiply its own
// load by the attempts of every request:
//
//   retries outstanding <= max(min_retry_concurrency,
//                              floor(ratio * active attempts))
//
// A retry is outstanding from TryStartRetry (when it is decided, before its
// backoff) until EndRetry (when its attempt ends, or the request is dropped
// while it waits). `active` is the caller's count of attempts in flight at
// the host.
//
// Thread-safety: none; one worker thread owns each instance.
#ifndef FETCHD_SERVICE_CORE_POLITENESS_RETRY_BUDGET_H_
#define FETCHD_SERVICE_CORE_POLITENESS_RETRY_BUDGET_H_

#include <string>

#include "service/core/politeness/rule.h"

namespace fetchd::core::politeness {

class RetryBudget {
 public:
  explicit RetryBudget(const RetryBudgetConfig& config) : config_(config) {}

  // Takes a place for one retry when the budget has one.
  [[nodiscard]] bool TryStartRetry(int active);
  // A retry taken by TryStartRetry ended.
  void EndRetry();

  // The budget when `active` attempts are in flight.
  [[nodiscard]] int Limit(int active) const;
  // Why TryStartRetry(active) said no, naming the budget, e.g. "retry budget
  // of the host exhausted: 3 retries outstanding, budget max(3,
  // 0.2 x 10 active) = 3".
  [[nodiscard]] std::string DenialMessage(int active) const;

  int outstanding() const { return outstanding_; }

 private:
  const RetryBudgetConfig config_;
  int outstanding_ = 0;
};

}  // namespace fetchd::core::politeness

#endif  // FETCHD_SERVICE_CORE_POLITENESS_RETRY_BUDGET_H_
