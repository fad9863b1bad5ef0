// FetchServiceImpl: the gRPC edge of fetchd (callback API). It validates and
// admits calls, turns requests into jobs for the Fetcher, and streams each
// result back as it completes: one write in flight per stream, results that
// are waiting to be written bounded by the batch's window.
//
// Callers: every FetchBatch/Fetch call is first identified by
// auth::CallerAuth (config.auth: bearer token, client certificate or
// anonymous); a call that must be authenticated and isn't gets
// UNAUTHENTICATED before anything else is looked at.
//
// Admission: a call is refused with RESOURCE_EXHAUSTED (trailer
// "retry-after-ms") when its requests would take the server over
// limits.max_pending, or when limits.max_active_calls calls are running, or
// when its caller would exceed its own max_pending or max_active_calls
// (auth::CallerQuotas); with UNAVAILABLE once StartDraining() was called.
//
// Destinations: a request whose host is not in its caller's allowed_hosts
// gets a result with ERROR_KIND_DENIED naming the caller and the rule; the
// rest of the batch runs. Fairness: each batch is tagged with its caller,
// and the scheduler serves a host's callers round-robin (HostScheduler).
//
// Cancellation (client cancel, RPC deadline, fail_fast) cancels the batch in
// the Fetcher, which ends its queued and running transfers.
//
// Observation: every call's end (method, status, handling time, whether it
// was refused) and the results of requests that fail validation (the
// workers report all other results) go to the optional core::FetchObserver.
//
// Thread-safety: gRPC calls the handlers from its threads; workers call
// Batch::Deliver from theirs. Shared state is atomic or guarded per call.
#ifndef FETCHD_SERVICE_API_FETCH_SERVICE_H_
#define FETCHD_SERVICE_API_FETCH_SERVICE_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "fetch/v1/config.pb.h"
#include "fetch/v1/fetch.grpc.pb.h"
#include "service/api/request_validation.h"
#include "service/auth/caller_auth.h"
#include "service/auth/caller_quota.h"
#include "service/common/clock.h"
#include "service/core/fetch_observer.h"
#include "service/core/fetcher.h"

namespace fetchd::api {

class FetchServiceImpl final : public fetch::v1::FetchService::CallbackService {
 public:
  // Checks config.request_defaults against config.request_bounds and loads
  // config.auth (reading the files it names).
  // `fetcher` and `clock` must outlive the service, and so must `observer`
  // unless it is null (nothing reported). `clock` must be the fetcher's:
  // jobs are stamped with their admission time on it.
  static absl::StatusOr<std::unique_ptr<FetchServiceImpl>> Create(
      const fetch::v1::ServerConfig& config, core::Fetcher* fetcher,
      const Clock* clock, core::FetchObserver* observer = nullptr);

  grpc::ServerWriteReactor<fetch::v1::FetchEvent>* FetchBatch(
      grpc::CallbackServerContext* context,
      const fetch::v1::BatchRequest* request) override;
  grpc::ServerUnaryReactor* Fetch(grpc::CallbackServerContext* context,
                                  const fetch::v1::FetchRequest* request,
                                  fetch::v1::FetchResult* response) override;

  // New calls get UNAVAILABLE from now on; running ones continue.
  void StartDraining() { draining_.store(true, std::memory_order_release); }
  // Cancels every running call: its unfinished requests end with CANCELLED
  // results, which are still streamed, and the call then ends OK. For the
  // end of a drain's grace period.
  void CancelAllCalls();

  // Who may call, and the endpoint's credentials (for the ServerBuilder).
  const auth::CallerAuth& caller_auth() const { return *auth_; }
  // Per-caller admission counters (for tests).
  const auth::CallerQuotas& caller_quotas() const { return quotas_; }
  // The same counters, for other services whose calls share the quotas
  // (the WebSocket bridge).
  auth::CallerQuotas* shared_caller_quotas() { return &quotas_; }

  // Requests admitted and not yet finished.
  int64_t pending() const { return pending_.load(std::memory_order_relaxed); }
  int64_t active_calls() const {
    return active_calls_.load(std::memory_order_relaxed);
  }
  // Admitted calls of `method` not yet done.
  int64_t active_calls(core::CallMethod method) const {
    return active_by_method_[static_cast<int>(method)].load(
        std::memory_order_relaxed);
  }
  // The most window slots any finished call held at once.
  int64_t window_high_water() const {
    return window_high_water_.load(std::memory_order_relaxed);
  }
  // The most streamed body bytes (heads and chunks) any finished call held
  // received but unwritten at once (see limits.max_stream_buffer_bytes).
  int64_t stream_buffer_high_water() const {
    return stream_high_water_.load(std::memory_order_relaxed);
  }

  // Called by the calls themselves (they live in the .cc file).
  void OnRequestsDone(int64_t n);
  void OnCallDone(const core::Batch* call, core::CallMethod method,
                  int64_t window_high_water);
  // A call that started at `started` (on the service's clock) finished
  // with `status`; `rejected` if it was refused before admission.
  void ReportCall(core::CallMethod method, const grpc::Status& status,
                  absl::Time started, bool rejected) const;
  // A request failed validation with `why`: tells the observer when the
  // destination policy refused it.
  void ReportDenied(const absl::Status& why) const;
  // The final result of a request that failed validation (no worker saw
  // it), admitted at `admitted`.
  void ReportInvalid(const fetch::v1::FetchRequest& request,
                     const fetch::v1::FetchRequest& defaults,
                     const fetch::v1::FetchResult& result,
                     absl::Time admitted) const;

 private:
  FetchServiceImpl(const fetch::v1::ServerConfig& config,
                   RequestValidator validator,
                   std::unique_ptr<auth::CallerAuth> auth,
                   core::Fetcher* fetcher, const Clock* clock,
                   core::FetchObserver* observer);
  // The caller of the call, or UNAUTHENTICATED.
  absl::StatusOr<auth::Caller> Identify(
      const grpc::CallbackServerContext* context) const;
  // Admits a call of `n` requests by `caller`, or says why not. On OK
  // `*lease` holds the call's share of its caller's quota.
  grpc::Status Admit(grpc::CallbackServerContext* context,
                     core::CallMethod method, int64_t n,
                     const auth::Caller& caller,
                     std::unique_ptr<auth::CallerQuotas::Lease>* lease);
  // The caller's destination rule, for its requests' URLs and for every
  // redirect hop; null when the caller may fetch every host.
  static std::shared_ptr<const core::HostCheck> HopCheck(
      const auth::Caller& caller);
  // Null if `check` (may be null: everything allowed) lets the caller
  // fetch the host of `job`, else the DENIED result's message.
  static std::optional<std::string> DeniedBy(const core::HostCheck* check,
                                             const core::FetchJob& job);
  absl::Time DeadlineOf(const grpc::CallbackServerContext* context) const;
  void Register(const std::shared_ptr<core::Batch>& call);

  const fetch::v1::Limits limits_;
  const RequestValidator validator_;
  const std::unique_ptr<auth::CallerAuth> auth_;
  auth::CallerQuotas quotas_;
  core::Fetcher* const fetcher_;
  const Clock* const clock_;
  core::FetchObserver* const observer_;  // may be null
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> pending_{0};
  std::atomic<int64_t> active_calls_{0};
  std::array<std::atomic<int64_t>, core::kCallMethods> active_by_method_{};
  std::atomic<int64_t> window_high_water_{0};
  std::atomic<int64_t> stream_high_water_{0};
  absl::Mutex calls_mu_;
  // Running calls, for CancelAllCalls().
  std::map<const core::Batch*, std::weak_ptr<core::Batch>> calls_
      ABSL_GUARDED_BY(calls_mu_);
};

}  // namespace fetchd::api

#endif  // FETCHD_SERVICE_API_FETCH_SERVICE_H_
