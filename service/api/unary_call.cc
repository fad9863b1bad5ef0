#include "service/api/unary_call.h"

#include <chrono>
#include <utility>

namespace fetchd::api {

UnaryCall::UnaryCall(const Options& options, const CallEnv& env,
                     grpc::CallbackServerContext* context,
                     fetch::v1::FetchResult* response, absl::Time started,
                     std::unique_ptr<CallGate::Ticket> ticket)
    : core::Batch(options, env.fetcher),
      env_(env),
      context_(context),
      response_(response),
      started_(started),
      ticket_(std::move(ticket)) {}

UnaryCall::~UnaryCall() {
  if (deadline_cut_.has_value()) env_.deadlines->Cancel(*deadline_cut_);
  env_.stats->OnCallDone(window_high_water(), stream_buffered_high_water());
}

void UnaryCall::Start(std::shared_ptr<UnaryCall> self) {
  absl::MutexLock lock(&mu_);
  self_ = std::move(self);
}

void UnaryCall::Deliver(fetch::v1::FetchResult result, bool holds_window) {
  ticket_->RequestsDone(1);
  OnResultWritten(holds_window);
  absl::MutexLock lock(&mu_);
  if (finished_) return;
  *response_ = std::move(result);
  FinishLocked(grpc::Status::OK);
}

void UnaryCall::CutBeforeDeadline(absl::Time rpc_deadline) {
  deadline_cut_ = ScheduleDeadlineCut(env_, rpc_deadline, shared_from_this());
}

void UnaryCall::CancelForShutdown() {
  CancelCall(env_, shared_from_this(), fetch::v1::ERROR_KIND_CANCELLED);
}

void UnaryCall::OnCancel() {
  const bool deadline_passed =
      context_->deadline() <= std::chrono::system_clock::now();
  CancelCall(env_, shared_from_this(),
             deadline_passed ? fetch::v1::ERROR_KIND_DEADLINE_EXCEEDED
                             : fetch::v1::ERROR_KIND_CANCELLED);
  absl::MutexLock lock(&mu_);
  if (finished_) return;
  FinishLocked(deadline_passed
                   ? grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                  "deadline exceeded")
                   : grpc::Status::CANCELLED);
}

void UnaryCall::OnDone() {
  std::shared_ptr<UnaryCall> self;
  {
    absl::MutexLock lock(&mu_);
    self = std::move(self_);
  }
  // `self` may be the last reference: released here, after the lock.
}

void UnaryCall::FinishLocked(const grpc::Status& status) {
  finished_ = true;
  ReportCall(env_, core::CallMethod::kFetch, status, started_,
             /*rejected=*/false);
  Finish(status);
}

}  // namespace fetchd::api
