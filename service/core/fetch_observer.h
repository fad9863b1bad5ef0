// FetchObserver: what the engine and the API layer report about requests and
// calls as they happen, for metrics and the access log. The curl workers
// report attempts and final results (they own those facts); the API layer
// reports calls, and the final results of requests that never reached a
// worker (they failed validation).
//
// The interface keeps the engine free of any metrics library: the
// implementation (service/metrics) decides what to count.
//
// Thread-safety: implementations must accept calls from any thread at any
// time, concurrently. Calls come from the hot path (every attempt and every
// result), so they must be cheap and must not block; they must not call back
// into the engine. Arguments are only valid during the call.
#ifndef FETCHD_SERVICE_CORE_FETCH_OBSERVER_H_
#define FETCHD_SERVICE_CORE_FETCH_OBSERVER_H_

#include <optional>

#include "absl/random/bit_gen_ref.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "fetch/v1/fetch.pb.h"
#include "service/core/fetch_job.h"
#include "service/core/retry_policy.h"

namespace fetchd::core {

// The RPC methods of fetch.v1.FetchService.
enum class CallMethod { kFetchBatch = 0, kFetch = 1, kFetchStream = 2 };
inline constexpr int kCallMethods = 3;

// A request whose final result is known.
struct FinishedRequest {
  // Upper case once validated; whatever the caller sent (or the default)
  // for a request that failed validation.
  absl::string_view method;
  // The request's URL (normalized once validated). It may carry userinfo
  // and a query string: an observer that logs it must strip them.
  absl::string_view url;
  // "scheme://host:port" in lower case; empty when the URL was invalid.
  absl::string_view host_key;
  // From admission (job creation) to the final result: queue waits,
  // attempts and retry backoffs included.
  absl::Duration duration;
};

class FetchObserver {
 public:
  virtual ~FetchObserver() = default;

  // Worker: an attempt of `job` has been handed to curl (job.attempts
  // counts it), after waiting `queue_wait` for its host/global/batch slot.
  virtual void OnAttemptStarted(const FetchJob& job,
                                absl::Duration queue_wait) = 0;

  // Worker: an attempt that OnAttemptStarted reported has ended (normally,
  // by a fetchd timeout or abort, or cancelled). `attempt` holds what it
  // got: status, error, timings, bytes, redirects, connection_reused.
  // `connected`: a connection to the server was up. `retry`: why the
  // request will be tried again; nullopt when this attempt was its last.
  virtual void OnAttemptFinished(const FetchJob& job,
                                 const fetch::v1::FetchResult& attempt,
                                 bool connected,
                                 std::optional<RetryReason> retry) = 0;

  // Worker or API thread: the final result of one request, exactly once
  // per admitted request, just before it is handed to its call. `rng` is
  // the calling thread's random source (for sampling); valid during the
  // call only.
  virtual void OnResult(const FinishedRequest& request,
                        const fetch::v1::FetchResult& result,
                        absl::BitGenRef rng) = 0;

  // API or worker thread: the destination policy refused a request (its
  // URL, a redirect target, or an address it resolved to), by a rule of
  // `category` (policy::Decision::category, or "scheme"). Reported before
  // the request's OnResult. Default: nothing.
  virtual void OnPolicyDenied(absl::string_view category) { (void)category; }

  // API thread: a FetchStream read a message of `n` requests (admitted,
  // about to be submitted). Default: nothing.
  virtual void OnStreamRequests(int64_t n) { (void)n; }
  // API thread: a FetchStream waited `waited` for room (its window, or the
  // pending limits) before it read its next message. Default: nothing.
  virtual void OnStreamWaited(absl::Duration waited) { (void)waited; }

  // API thread: a call ended with `code` after `handling` (from the
  // handler's start to the call's Finish). `rejected`: it was refused
  // before any of its requests was admitted (INVALID_ARGUMENT,
  // RESOURCE_EXHAUSTED or UNAVAILABLE). Exactly once per call.
  virtual void OnCallFinished(CallMethod method, absl::StatusCode code,
                              absl::Duration handling, bool rejected) = 0;
};

}  // namespace fetchd::core

#endif  // FETCHD_SERVICE_CORE_FETCH_OBSERVER_H_
