#include "service/core/politeness/retry_budget.h"

#include <algorithm>
#include <cassert>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace fetchd::core::politeness {

int RetryBudget::Limit(int active) const {
  const double share = std::floor(config_.ratio * std::max(active, 0));
  return std::max(config_.min_retry_concurrency, static_cast<int>(share));
}

bool RetryBudget::TryStartRetry(int active) {
  if (outstanding_ >= Limit(active)) return false;
  ++outstanding_;
  return true;
}

void RetryBudget::EndRetry() {
  assert(outstanding_ > 0);
  outstanding_ = std::max(outstanding_ - 1, 0);
}

std::string RetryBudget::DenialMessage(int active) const {
  return absl::StrCat(
      "retry budget of the host exhausted: ", outstanding_,
      " retries outstanding, budget max(retry_budget.min_retry_concurrency ",
      config_.min_retry_concurrency, ", retry_budget.ratio ", config_.ratio,
      " x ", active, " active) = ", Limit(active));
}

}  // namespace fetchd::core::politeness
