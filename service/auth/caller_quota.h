// CallerQuotas: per-caller admission, so that one caller can't take the
// whole server's pending bound or all of its calls.
//
// A call of n requests by caller C is admitted when C has fewer than
// C.rules->max_active_calls active calls and C's pending requests plus n
// stay within C.rules->max_pending (0 means no per-caller limit; the
// server-wide limits are checked by the caller of Admit). Every identity
// has its own counters, also those sharing auth.default_caller's rules;
// all anonymous calls count as one caller. A caller's counters exist only
// while it has an active call, so memory is bounded by the active calls.
//
// Thread-safety: every method may be called from any thread. Admit() and
// the end of a lease take one mutex; Lease::RequestsDone() is one atomic
// operation (it runs once per finished request).
#ifndef FETCHD_SERVICE_AUTH_CALLER_QUOTA_H_
#define FETCHD_SERVICE_AUTH_CALLER_QUOTA_H_

#include <atomic>
#include <cassert>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "service/auth/caller_auth.h"

namespace fetchd::auth {

class CallerQuotas {
 public:
  // One admitted call's share of its caller's quota. Destroying it ends the
  // call (its requests must have been reported done by then).
  class Lease {
   public:
    ~Lease();
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;

    // `n` requests of the call have their final result.
    // Reporting more requests than were admitted is a bug: the caller's
    // pending count would go down for requests that are still running.
    void RequestsDone(int64_t n) {
      [[maybe_unused]] const int64_t before =
          pending_->fetch_sub(n, std::memory_order_relaxed);
      assert(n >= 0 && before >= n);
    }

    // Admits `n` more requests into the call (a stream's next message):
    // ResourceExhausted, naming the caller and the limit, when the
    // caller's pending requests would exceed its max_pending.
    [[nodiscard]] absl::Status TryAddRequests(int64_t n);

   private:
    friend class CallerQuotas;
    Lease(CallerQuotas* quotas, const Caller& caller,
          std::shared_ptr<std::atomic<int64_t>> pending)
        : quotas_(quotas), caller_(caller), pending_(std::move(pending)) {}

    CallerQuotas* const quotas_;
    const Caller caller_;
    const std::shared_ptr<std::atomic<int64_t>> pending_;
  };

  CallerQuotas() = default;
  CallerQuotas(const CallerQuotas&) = delete;
  CallerQuotas& operator=(const CallerQuotas&) = delete;

  // Admits a call of `n` requests by `caller`. The quotas must outlive the
  // lease. Errors: ResourceExhausted naming the caller, the limit (by its
  // config field) and the numbers.
  [[nodiscard]] absl::StatusOr<std::unique_ptr<Lease>> Admit(
      const Caller& caller, int64_t n);

  // For tests: callers with an active call, and one caller's pending
  // requests (0 when it has no active call).
  size_t tracked_callers() const;
  int64_t pending(const std::string& caller) const;

 private:
  struct Usage {
    int64_t active_calls = 0;
    std::shared_ptr<std::atomic<int64_t>> pending =
        std::make_shared<std::atomic<int64_t>>(0);
  };
  void EndCall(const std::string& caller);
  // The caller's pending requests, `pending`, plus `n` if its max_pending
  // allows them.
  absl::Status AddPending(const Caller& caller, std::atomic<int64_t>& pending,
                          int64_t n);
  static std::string OverPending(const Caller& caller, int64_t pending,
                                 int64_t n);

  mutable absl::Mutex mu_;
  absl::flat_hash_map<std::string, Usage> usage_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fetchd::auth

#endif  // FETCHD_SERVICE_AUTH_CALLER_QUOTA_H_
