// CallGate: what every gRPC call of fetchd passes before it does any work,
// shared by FetchService and WebSocketService.
//
//  1. Identify: the caller, from the verified client certificate or the
//     bearer token (auth::CallerAuth); UNAUTHENTICATED otherwise.
//  2. Admit: UNAVAILABLE once StartDraining() was called; RESOURCE_EXHAUSTED
//     with the trailers "retry-after-ms" and "grpc-retry-pushback-ms" when
//     the call would take the server past its own limit of active calls
//     (per service), its pending requests past limits.max_pending, or its
//     caller past the caller's quota (auth::CallerQuotas).
//  3. Register: a running call can be cancelled by CancelAll() (the end of
//     a drain's grace period); WaitIdle() returns as soon as no admitted
//     call is left.
//
// An admitted call holds a Ticket; dropping the ticket ends the call's
// admission (its active-call slot, the pending requests it has not
// reported done, its caller's lease).
//
// Thread-safety: every method may be called from any thread. The gate must
// outlive its tickets.
#ifndef FETCHD_SERVICE_API_CALL_GATE_H_
#define FETCHD_SERVICE_API_CALL_GATE_H_

#include <grpcpp/grpcpp.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fetch/v1/config.pb.h"
#include "service/auth/caller_auth.h"
#include "service/auth/caller_quota.h"

namespace fetchd::api {

// The one absl::Status → grpc::Status conversion of the gRPC edge.
grpc::Status ToGrpc(const absl::Status& status);

// The kinds of call the gate counts separately.
enum class CallKind {
  kFetchBatch = 0,
  kFetch = 1,
  kWebSocket = 2,
  kFetchStream = 3
};
inline constexpr int kCallKinds = 4;

// A running call that the gate can end early.
class CancellableCall {
 public:
  virtual ~CancellableCall() = default;
  // Ends the call soon: unfinished requests end with CANCELLED results (a
  // WebSocket closes with 1001), after which the call finishes.
  virtual void CancelForShutdown() = 0;
  // A drain started: a call that reads open-ended input (a FetchStream)
  // reads no more and ends once what it read has its results. Default:
  // nothing (the call has all its input).
  virtual void StopReading() {}
};

class CallGate {
 public:
  struct Options {
    // The server's limits (limits.max_pending; limits.max_active_calls for
    // the fetch calls, websocket.max_open for WebSockets).
    int64_t max_pending = 0;
    std::array<int64_t, kCallKinds> max_active = {0, 0, 0, 0};
    // The hint sent with RESOURCE_EXHAUSTED.
    absl::Duration retry_after = absl::Seconds(1);
    // Must outlive the gate.
    const auth::CallerAuth* auth = nullptr;
  };

  // The limits of `config` (validated).
  static Options OptionsFromConfig(const fetch::v1::ServerConfig& config,
                                   const auth::CallerAuth* auth);

  explicit CallGate(const Options& options);
  CallGate(const CallGate&) = delete;
  CallGate& operator=(const CallGate&) = delete;

  // One admitted call's share of the limits.
  class Ticket {
   public:
    ~Ticket();
    Ticket(const Ticket&) = delete;
    Ticket& operator=(const Ticket&) = delete;
    // `n` of the call's requests got their final result.
    void RequestsDone(int64_t n);
    // Admits `n` more requests into the call (a stream's next message)
    // if the server's limits.max_pending and the caller's max_pending
    // allow them; ResourceExhausted naming the limit otherwise (no
    // trailers: the call is running).
    [[nodiscard]] absl::Status TryAddRequests(int64_t n);
    // Registers `call` for CancelAll(); the registration ends with the
    // ticket.
    void Register(std::weak_ptr<CancellableCall> call);

   private:
    friend class CallGate;
    Ticket(CallGate* gate, CallKind kind, int64_t requests,
           std::unique_ptr<auth::CallerQuotas::Lease> lease)
        : gate_(gate),
          kind_(kind),
          requests_(requests),
          lease_(std::move(lease)) {}

    CallGate* const gate_;
    const CallKind kind_;
    std::atomic<int64_t> requests_;
    const std::unique_ptr<auth::CallerQuotas::Lease> lease_;
  };

  // The caller of the call, or UNAUTHENTICATED.
  absl::StatusOr<auth::Caller> Identify(
      const grpc::CallbackServerContext& context) const;

  // Admits a call of `kind` with `requests` requests by `caller`: the
  // ticket, or the status to finish the call with (the retry trailers are
  // already on `context`). A stream is admitted with 0 requests and adds
  // them as it reads them (Ticket::TryAddRequests).
  absl::StatusOr<std::unique_ptr<Ticket>> Admit(
      grpc::CallbackServerContext& context, CallKind kind, int64_t requests,
      const auth::Caller& caller);

  // New calls get UNAVAILABLE from now on; running ones continue, and
  // those with open-ended input stop reading it (StopReading).
  void StartDraining();
  bool draining() const { return draining_.load(std::memory_order_acquire); }
  // Cancels every registered call (see CancellableCall).
  void CancelAll();
  // Waits until no admitted call is left or `deadline` passes (real time);
  // true if none is left.
  bool WaitIdle(absl::Time deadline);

  // Requests admitted and not yet finished.
  int64_t pending() const { return pending_.load(std::memory_order_relaxed); }
  // Admitted calls not yet done, of one kind or in all.
  int64_t active_calls(CallKind kind) const {
    return active_[static_cast<int>(kind)].load(std::memory_order_relaxed);
  }
  int64_t active_calls() const;
  // Per-caller admission counters (for tests).
  const auth::CallerQuotas& caller_quotas() const { return quotas_; }

 private:
  void Release(const Ticket& ticket);
  // Adds `n` to the requests pending server-wide, or ResourceExhausted
  // ("server busy: ...") when they would exceed limits.max_pending.
  absl::Status AddPending(int64_t n);
  std::vector<std::shared_ptr<CancellableCall>> RegisteredCalls();

  const Options options_;
  auth::CallerQuotas quotas_;
  std::atomic<bool> draining_{false};
  std::atomic<int64_t> pending_{0};
  std::array<std::atomic<int64_t>, kCallKinds> active_{};

  absl::Mutex mu_;
  // Admitted calls not yet done (all kinds): WaitIdle() waits for 0.
  int64_t admitted_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<const Ticket*, std::weak_ptr<CancellableCall>> registered_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace fetchd::api

#endif  // FETCHD_SERVICE_API_CALL_GATE_H_
