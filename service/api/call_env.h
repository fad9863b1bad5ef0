// CallEnv: what a running FetchService call needs from the service, and the
// reporting every call does at its end. Plain pointers to objects that
// outlive every call (the FetchdServer owns them).
#ifndef FETCHD_SERVICE_API_CALL_ENV_H_
#define FETCHD_SERVICE_API_CALL_ENV_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>

#include "absl/time/time.h"
#include "service/api/deadline_timer.h"
#include "service/common/clock.h"
#include "service/core/fetch_observer.h"
#include "service/core/fetcher.h"

namespace fetchd::api {

// High-water marks over finished calls (for tests and metrics).
class CallStats {
 public:
  // A call ended that held at most `window` window slots and `streamed`
  // streamed body bytes at once.
  void OnCallDone(int64_t window, int64_t streamed) {
    Raise(window_high_water_, window);
    Raise(stream_high_water_, streamed);
  }
  int64_t window_high_water() const {
    return window_high_water_.load(std::memory_order_relaxed);
  }
  int64_t stream_buffer_high_water() const {
    return stream_high_water_.load(std::memory_order_relaxed);
  }

 private:
  static void Raise(std::atomic<int64_t>& mark, int64_t value) {
    int64_t high = mark.load(std::memory_order_relaxed);
    while (value > high && !mark.compare_exchange_weak(high, value)) {
    }
  }
  std::atomic<int64_t> window_high_water_{0};
  std::atomic<int64_t> stream_high_water_{0};
};

struct CallEnv {
  core::Fetcher* fetcher = nullptr;
  // Ends a call's unfinished requests `deadline_margin` before its RPC
  // deadline (limits.deadline_margin; zero: never). Null: never. Runs on
  // `clock`.
  DeadlineTimer* deadlines = nullptr;
  absl::Duration deadline_margin = absl::ZeroDuration();
  // The fetcher's clock: calls are stamped with their start on it.
  const Clock* clock = nullptr;
  core::FetchObserver* observer = nullptr;  // may be null
  CallStats* stats = nullptr;
};

// Tells the observer that a call of `method` that started at `started`
// (env.clock) finished with `status`; `rejected` if it was refused before
// admission.
inline void ReportCall(const CallEnv& env, core::CallMethod method,
                       const grpc::Status& status, absl::Time started,
                       bool rejected) {
  if (env.observer == nullptr) return;
  env.observer->OnCallFinished(
      method, static_cast<absl::StatusCode>(status.error_code()),
      env.clock->Now() - started, rejected);
}

// Cancels `call` with `why` (CANCELLED or DEADLINE_EXCEEDED) and, the first
// time, ends its queued and running jobs in the fetcher.
inline void CancelCall(const CallEnv& env,
                       const std::shared_ptr<core::Batch>& call,
                       fetch::v1::ErrorKind why) {
  if (call->Cancel(why)) env.fetcher->CancelBatch(call);
}

// Schedules the cut that ends `call`'s unfinished requests with
// DEADLINE_EXCEEDED results env.deadline_margin before `rpc_deadline`
// (env.clock), so they still reach the caller; nullopt when there is none to
// make (no timer, no margin, no deadline). The call drops the returned key
// when it ends.
inline std::optional<DeadlineTimer::Key> ScheduleDeadlineCut(
    const CallEnv& env, absl::Time rpc_deadline,
    std::weak_ptr<core::Batch> call) {
  if (env.deadlines == nullptr || env.deadline_margin <= absl::ZeroDuration() ||
      rpc_deadline == absl::InfiniteFuture()) {
    return std::nullopt;
  }
  return env.deadlines->Schedule(
      rpc_deadline - env.deadline_margin, [env, call = std::move(call)] {
        if (std::shared_ptr<core::Batch> live = call.lock()) {
          CancelCall(env, live, fetch::v1::ERROR_KIND_DEADLINE_EXCEEDED);
        }
      });
}

}  // namespace fetchd::api

#endif  // FETCHD_SERVICE_API_CALL_ENV_H_
