#include "service/api/stream_call.h"

#include <chrono>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "service/api/submit_requests.h"

namespace fetchd::api {

using fetch::v1::FetchEvent;
using fetch::v1::FetchRequest;
using fetch::v1::FetchStreamRequest;

StreamCall::StreamCall(const CallEnv& env, Setup setup,
                       std::unique_ptr<CallGate::Ticket> ticket)
    : env_(env),
      setup_(std::move(setup)),
      ticket_(std::move(ticket)),
      ticket_view_(ticket_.get()) {}

void StreamCall::Start(
    grpc::ServerBidiReactor<FetchStreamRequest, FetchEvent>* reactor) {
  absl::MutexLock lock(&mu_);
  reactor_ = reactor;
  reading_ = true;
  reactor_->StartRead(&in_);
}

void StreamCall::OnReadDone(bool ok) {
  if (!ok) {
    // Half-close (or a broken stream, which OnCancel ends).
    {
      absl::MutexLock lock(&mu_);
      reading_ = false;
    }
    EndInput(grpc::Status::OK);
    return;
  }
  bool opened = false;
  {
    absl::MutexLock lock(&mu_);
    if (input_done_) {
      reading_ = false;
      return;
    }
    opened = batch_ != nullptr;
  }
  if (!opened) {
    if (!Open(in_.options())) return;
  } else if (in_.has_options()) {
    EndInput(grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("options: only the first message of a FetchStream may "
                     "carry them; the message after request ",
                     next_index_, " did")));
    ReadOn();
    return;
  }
  Take();
}

bool StreamCall::Open(const fetch::v1::BatchRequest& options) {
  absl::StatusOr<Opened> opened = setup_.opener(options);
  if (!opened.ok()) {
    FinishEarly(ToGrpc(opened.status()), /*rejected=*/true);
    return false;
  }
  opened_ = *std::move(opened);
  BatchCall::Setup setup;
  setup.method = core::CallMethod::kFetchStream;
  setup.fail_fast = opened_.fail_fast;
  setup.open_input = true;
  setup.started = setup_.started;
  auto batch = std::make_shared<BatchCall>(opened_.options, env_, setup,
                                           std::move(ticket_));
  batch->Attach(this);
  {
    absl::MutexLock lock(&mu_);
    // Ended meanwhile (drain, cancel) with nothing admitted.
    if (finished_early_ || reactor_ == nullptr) return false;
    batch_ = batch;
  }
  batch->CutBeforeDeadline(setup_.deadline);
  return true;
}

void StreamCall::Take() {
  const int64_t n = in_.requests_size();
  if (n > setup_.max_message_requests) {
    EndInput(grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("requests: a FetchStream message has ", n,
                     " requests; the server limit per message is ",
                     setup_.max_message_requests,
                     " (limits.max_batch_size); send them in smaller "
                     "messages")));
  } else if (n > std::numeric_limits<uint32_t>::max() - int64_t{next_index_}) {
    EndInput(grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        "requests: a FetchStream takes at most 4294967295 requests (the "
        "range of FetchResult.index); open another"));
  } else if (n > 0) {
    if (!ticket_view_->TryAddRequests(n).ok()) {
      absl::MutexLock lock(&mu_);
      reading_ = false;
      parked_ = true;
      if (waiting_since_ == absl::InfinitePast()) {
        waiting_since_ = env_.clock->Now();
      }
      ScheduleRetryLocked(kAdmitRetry);
      return;
    }
    Submit();
  }
  ReadOn();
}

void StreamCall::Submit() {
  const int n = in_.requests_size();
  std::shared_ptr<BatchCall> batch;
  {
    absl::MutexLock lock(&mu_);
    batch = batch_;
  }
  if (!batch->AddRequests(n)) {
    // The input ended meanwhile (fail_fast): these are not taken.
    ticket_view_->RequestsDone(n);
    absl::MutexLock lock(&mu_);
    input_done_ = true;
    return;
  }
  if (env_.observer != nullptr) env_.observer->OnStreamRequests(n);
  std::vector<const FetchRequest*> requests;
  requests.reserve(n);
  for (const FetchRequest& request : in_.requests()) {
    requests.push_back(&request);
  }
  CallRequests call_requests;
  call_requests.defaults = &opened_.defaults;
  call_requests.requests = requests;
  call_requests.first_index = next_index_;
  call_requests.cookie_jar = opened_.cookie_jar;
  call_requests.defaults_set_queue_timeout = opened_.defaults_set_queue_timeout;
  SubmitRequests(*setup_.validator, env_, setup_.caller, batch, call_requests,
                 env_.clock->Now());
  next_index_ += static_cast<uint32_t>(n);
}

void StreamCall::ReadOn() {
  absl::MutexLock lock(&mu_);
  reading_ = false;
  MaybeReadLocked();
}

void StreamCall::MaybeReadLocked() {
  if (reading_ || parked_ || input_done_ || reactor_ == nullptr) return;
  if (batch_ != nullptr && batch_->unwritten() >= setup_.read_window) {
    if (waiting_since_ == absl::InfinitePast()) {
      waiting_since_ = env_.clock->Now();
    }
    return;
  }
  if (waiting_since_ != absl::InfinitePast()) {
    if (env_.observer != nullptr) {
      env_.observer->OnStreamWaited(env_.clock->Now() - waiting_since_);
    }
    waiting_since_ = absl::InfinitePast();
  }
  reading_ = true;
  reactor_->StartRead(&in_);
}

void StreamCall::ScheduleRetryLocked(absl::Duration delay) {
  if (env_.deadlines == nullptr) return;
  const absl::Time when = env_.clock->Now() + delay;
  if (retry_.has_value()) {
    // One retry at a time: the earlier wins.
    if (retry_->first <= when) return;
    env_.deadlines->Cancel(*retry_);
  }
  std::weak_ptr<StreamCall> weak = weak_from_this();
  retry_ = env_.deadlines->Schedule(when, [weak] {
    if (std::shared_ptr<StreamCall> call = weak.lock()) call->RetryParked();
  });
}

void StreamCall::RetryParked() {
  {
    absl::MutexLock lock(&mu_);
    retry_.reset();
    if (!parked_ || input_done_ || reactor_ == nullptr) return;
  }
  if (!ticket_view_->TryAddRequests(in_.requests_size()).ok()) {
    absl::MutexLock lock(&mu_);
    ScheduleRetryLocked(kAdmitRetry);
    return;
  }
  {
    absl::MutexLock lock(&mu_);
    parked_ = false;
    reading_ = true;
  }
  Submit();
  ReadOn();
}

void StreamCall::OnResultsWritten() {
  absl::MutexLock lock(&mu_);
  if (parked_) {
    // Room may have freed: admit on the timer's thread, not under the
    // BatchCall's lock (submitting delivers to it).
    ScheduleRetryLocked(absl::ZeroDuration());
  } else {
    MaybeReadLocked();
  }
}

std::shared_ptr<BatchCall> StreamCall::StopInput() {
  absl::MutexLock lock(&mu_);
  input_done_ = true;
  return batch_;
}

void StreamCall::EndInput(const grpc::Status& status) {
  const std::shared_ptr<BatchCall> batch = StopInput();
  if (batch != nullptr) {
    batch->EndInput(status);
  } else {
    FinishEarly(status, /*rejected=*/false);
  }
}

void StreamCall::FinishEarly(const grpc::Status& status, bool rejected) {
  absl::MutexLock lock(&mu_);
  input_done_ = true;
  if (finished_early_ || reactor_ == nullptr || batch_ != nullptr) return;
  finished_early_ = true;
  ReportCall(env_, core::CallMethod::kFetchStream, status, setup_.started,
             rejected);
  reactor_->Finish(status);
}

void StreamCall::OnWriteDone(bool ok) {
  std::shared_ptr<BatchCall> batch;
  {
    absl::MutexLock lock(&mu_);
    batch = batch_;
  }
  if (batch != nullptr) batch->OnWriteDone(ok);
}

void StreamCall::OnCancel(bool deadline_passed) {
  const std::shared_ptr<BatchCall> batch = StopInput();
  if (batch != nullptr) {
    batch->OnCancel(deadline_passed);
  } else {
    FinishEarly(deadline_passed
                    ? grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                   "deadline exceeded")
                    : grpc::Status::CANCELLED,
                /*rejected=*/false);
  }
}

void StreamCall::OnDone() {
  std::shared_ptr<BatchCall> batch;
  {
    absl::MutexLock lock(&mu_);
    reactor_ = nullptr;
    input_done_ = true;
    batch = batch_;
  }
  if (batch != nullptr) batch->OnDone();
}

void StreamCall::StartWrite(const FetchEvent* event) {
  absl::MutexLock lock(&mu_);
  if (reactor_ != nullptr) reactor_->StartWrite(event);
}

void StreamCall::Finish(const grpc::Status& status) {
  absl::MutexLock lock(&mu_);
  if (reactor_ != nullptr) reactor_->Finish(status);
}

void StreamCall::CancelForShutdown() {
  const std::shared_ptr<BatchCall> batch = StopInput();
  if (batch != nullptr) {
    batch->StopReading();
    batch->CancelForShutdown();
  } else {
    FinishEarly(
        grpc::Status(grpc::StatusCode::UNAVAILABLE, "fetchd is shutting down"),
        /*rejected=*/false);
  }
}

void StreamCall::StopReading() {
  const std::shared_ptr<BatchCall> batch = StopInput();
  if (batch != nullptr) {
    batch->StopReading();
  } else {
    FinishEarly(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                             "fetchd is draining: no request of this stream "
                             "was read; send them to another replica"),
                /*rejected=*/false);
  }
}

namespace {

class StreamReactor final
    : public grpc::ServerBidiReactor<FetchStreamRequest, FetchEvent> {
 public:
  StreamReactor(grpc::CallbackServerContext* context,
                std::shared_ptr<StreamCall> call)
      : context_(context), call_(std::move(call)) {
    call_->Start(this);
  }
  void OnReadDone(bool ok) override { call_->OnReadDone(ok); }
  void OnWriteDone(bool ok) override { call_->OnWriteDone(ok); }
  void OnCancel() override {
    call_->OnCancel(context_->deadline() <= std::chrono::system_clock::now());
  }
  void OnDone() override {
    call_->OnDone();
    delete this;
  }

 private:
  grpc::CallbackServerContext* const context_;
  const std::shared_ptr<StreamCall> call_;
};

}  // namespace

grpc::ServerBidiReactor<FetchStreamRequest, FetchEvent>* MakeStreamReactor(
    grpc::CallbackServerContext* context, std::shared_ptr<StreamCall> call) {
  return new StreamReactor(context, std::move(call));
}

}  // namespace fetchd::api
