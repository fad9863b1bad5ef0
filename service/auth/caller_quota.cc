#include "service/auth/caller_quota.h"

#include <cassert>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace fetchd::auth {

CallerQuotas::Lease::~Lease() { quotas_->EndCall(caller_.name); }

absl::Status CallerQuotas::Lease::TryAddRequests(int64_t n) {
  return quotas_->AddPending(caller_, *pending_, n);
}

std::string CallerQuotas::OverPending(const Caller& caller, int64_t pending,
                                      int64_t n) {
  const CallerRules& rules = *caller.rules;
  return absl::StrCat("caller \"", caller.DisplayName(), "\" has ", pending,
                      " requests pending; ", n, " more would exceed ",
                      rules.field, ".max_pending (", rules.max_pending, ")");
}

absl::Status CallerQuotas::AddPending(const Caller& caller,
                                      std::atomic<int64_t>& pending,
                                      int64_t n) {
  assert(n >= 0);
  const auto limit = static_cast<int64_t>(caller.rules->max_pending);
  // Under mu_, as in Admit(): only adds are locked, so none overtakes.
  absl::MutexLock lock(&mu_);
  const int64_t now = pending.load(std::memory_order_relaxed);
  if (limit > 0 && now + n > limit) {
    return absl::ResourceExhaustedError(OverPending(caller, now, n));
  }
  pending.fetch_add(n, std::memory_order_relaxed);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<CallerQuotas::Lease>> CallerQuotas::Admit(
    const Caller& caller, int64_t n) {
  assert(n >= 0);
  const CallerRules& rules = *caller.rules;
  absl::MutexLock lock(&mu_);
  // Not a structured binding: clang 14 (the fuzz build) can't capture one.
  const auto it = usage_.try_emplace(caller.name).first;
  Usage& usage = it->second;
  // Annotated: the analysis does not see that the lambda runs under mu_.
  const auto refuse = [&](absl::string_view message)
                          ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
                            if (usage.active_calls == 0) usage_.erase(it);
                            return absl::ResourceExhaustedError(message);
                          };
  if (rules.max_active_calls > 0 &&
      usage.active_calls >= static_cast<int64_t>(rules.max_active_calls)) {
    return refuse(absl::StrCat("caller \"", caller.DisplayName(), "\" has ",
                               usage.active_calls, " active calls, the limit ",
                               rules.field, ".max_active_calls"));
  }
  // Only this function adds to `pending`, under mu_; others only subtract,
  // so the check can't be overtaken.
  const int64_t pending = usage.pending->load(std::memory_order_relaxed);
  if (rules.max_pending > 0 &&
      pending + n > static_cast<int64_t>(rules.max_pending)) {
    return refuse(OverPending(caller, pending, n));
  }
  usage.pending->fetch_add(n, std::memory_order_relaxed);
  ++usage.active_calls;
  return std::unique_ptr<Lease>(new Lease(this, caller, usage.pending));
}

void CallerQuotas::EndCall(const std::string& caller) {
  absl::MutexLock lock(&mu_);
  auto it = usage_.find(caller);
  // Every lease holds its caller's entry: the entry goes only with its last
  // active call.
  assert(it != usage_.end() && it->second.active_calls > 0);
  if (it == usage_.end()) return;
  if (--it->second.active_calls == 0) usage_.erase(it);
}

size_t CallerQuotas::tracked_callers() const {
  absl::MutexLock lock(&mu_);
  return usage_.size();
}

int64_t CallerQuotas::pending(const std::string& caller) const {
  absl::MutexLock lock(&mu_);
  auto it = usage_.find(caller);
  return it == usage_.end()
             ? 0
             : it->second.pending->load(std::memory_order_relaxed);
}

}  // namespace fetchd::auth
