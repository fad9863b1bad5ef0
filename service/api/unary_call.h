// UnaryCall: one unary Fetch, run as a batch of one whose result becomes the
// response. Its own gRPC reactor; kept alive until both gRPC (OnDone) and
// the worker (Deliver) are done with it.
//
// Thread-safety: Deliver comes from a worker, the reactor's callbacks from
// gRPC threads; the call's state is under mu_.
#ifndef FETCHD_SERVICE_API_UNARY_CALL_H_
#define FETCHD_SERVICE_API_UNARY_CALL_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fetch/v1/fetch.pb.h"
#include "service/api/call_env.h"
#include "service/api/call_gate.h"
#include "service/core/batch.h"

namespace fetchd::api {

class UnaryCall final : public core::Batch,
                        public CancellableCall,
                        public grpc::ServerUnaryReactor,
                        public std::enable_shared_from_this<UnaryCall> {
 public:
  // `context` and `response` are gRPC's, valid until OnDone().
  UnaryCall(const Options& options, const CallEnv& env,
            grpc::CallbackServerContext* context,
            fetch::v1::FetchResult* response, absl::Time started,
            std::unique_ptr<CallGate::Ticket> ticket);
  ~UnaryCall() override;

  // Makes the call own itself until OnDone(); `self` is this call.
  void Start(std::shared_ptr<UnaryCall> self);

  // core::Batch
  void Deliver(fetch::v1::FetchResult result, bool holds_window) override;
  // CancellableCall
  void CancelForShutdown() override;
  // Ends the call's unfinished requests with DEADLINE_EXCEEDED results
  // `env.deadline_margin` before `rpc_deadline` (env.clock), so they still
  // reach the caller. Call once, after the call is shared.
  void CutBeforeDeadline(absl::Time rpc_deadline);
  // The call's admission (to register the call for CancelAll()).
  CallGate::Ticket& ticket() { return *ticket_; }
  // grpc::ServerUnaryReactor
  void OnCancel() override;
  void OnDone() override;

 private:
  void FinishLocked(const grpc::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const CallEnv env_;
  grpc::CallbackServerContext* const context_;
  fetch::v1::FetchResult* const response_;
  // When the handler started (env_.clock).
  const absl::Time started_;
  // The call's admission; released when the call ends.
  const std::unique_ptr<CallGate::Ticket> ticket_;
  // The cut scheduled by CutBeforeDeadline(), dropped when the call ends.
  std::optional<DeadlineTimer::Key> deadline_cut_;
  absl::Mutex mu_;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  std::shared_ptr<UnaryCall> self_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fetchd::api

#endif  // FETCHD_SERVICE_API_UNARY_CALL_H_
