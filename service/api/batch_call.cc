#include "service/api/batch_call.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"

namespace fetchd::api {

using fetch::v1::FetchEvent;
using fetch::v1::FetchResult;

BatchCall::BatchCall(const Options& options, const CallEnv& env,
                     const Setup& setup,
                     std::unique_ptr<CallGate::Ticket> ticket)
    : core::Batch(options, env.fetcher),
      env_(env),
      setup_(setup),
      ticket_(std::move(ticket)),
      input_open_(setup.open_input),
      unwritten_(setup.total) {}

BatchCall::~BatchCall() {
  if (deadline_cut_.has_value()) env_.deadlines->Cancel(*deadline_cut_);
  env_.stats->OnCallDone(window_high_water(), stream_buffered_high_water());
}

void BatchCall::Attach(EventSink* sink) {
  absl::MutexLock lock(&mu_);
  sink_ = sink;
}

bool BatchCall::AddRequests(int64_t n) {
  absl::MutexLock lock(&mu_);
  if (!input_open_ || finished_) return false;
  unwritten_.fetch_add(n, std::memory_order_release);
  return true;
}

void BatchCall::EndInput(const grpc::Status& status) {
  absl::MutexLock lock(&mu_);
  if (!input_open_) return;
  input_open_ = false;
  end_status_ = status;
  MaybeWriteLocked();
}

void BatchCall::StopReading() {
  EndInput(grpc::Status(
      grpc::StatusCode::UNAVAILABLE,
      "fetchd is draining: this stream's input was read up to the last "
      "request with a result; send the rest to another replica"));
}

void BatchCall::CutBeforeDeadline(absl::Time rpc_deadline) {
  deadline_cut_ = ScheduleDeadlineCut(env_, rpc_deadline, shared_from_this());
}

void BatchCall::CancelForShutdown() {
  CancelCall(env_, shared_from_this(), fetch::v1::ERROR_KIND_CANCELLED);
}

void BatchCall::Deliver(FetchResult result, bool holds_window) {
  ticket_->RequestsDone(1);
  const bool failed = result.error() != fetch::v1::ERROR_KIND_NONE &&
                      result.error() != fetch::v1::ERROR_KIND_CANCELLED;
  if (setup_.fail_fast && failed) {
    CancelCall(env_, shared_from_this(), fetch::v1::ERROR_KIND_CANCELLED);
    // A stream reads no more.
    EndInput(
        grpc::Status(grpc::StatusCode::ABORTED,
                     absl::StrCat("fail_fast: request ", result.index(),
                                  " failed; the input after it was not read")));
  }
  absl::MutexLock lock(&mu_);
  if (sink_ == nullptr || finished_) {
    OnResultWritten(holds_window);
    return;
  }
  if (ordered()) {
    const uint32_t index = result.index();
    out_of_order_.emplace(index, Pending{std::move(result), holds_window});
    while (!out_of_order_.empty() &&
           out_of_order_.begin()->first == next_index_) {
      ready_.push_back(std::move(out_of_order_.begin()->second));
      out_of_order_.erase(out_of_order_.begin());
      ++next_index_;
    }
  } else {
    ready_.push_back(Pending{std::move(result), holds_window});
  }
}

// Heads and chunks are never held for order or for Flush(): they go to the
// stream as they come (each transfer sends its own in order), so that the
// bytes they hold drain whatever the other requests do.
void BatchCall::DeliverHead(fetch::v1::BodyHead head, int64_t bytes) {
  Stream(Pending{std::move(head), false, bytes});
}

void BatchCall::DeliverChunk(fetch::v1::BodyChunk chunk, int64_t bytes) {
  Stream(Pending{std::move(chunk), false, bytes});
}

void BatchCall::Flush() {
  absl::MutexLock lock(&mu_);
  MaybeWriteLocked();
}

void BatchCall::OnWriteDone(bool ok) {
  absl::MutexLock lock(&mu_);
  write_in_flight_ = false;
  for (int i = 0; i < writing_window_slots_; ++i) OnResultWritten(true);
  writing_window_slots_ = 0;
  if (writing_stream_bytes_ > 0) OnStreamWritten(writing_stream_bytes_);
  writing_stream_bytes_ = 0;
  if (wrote_result_ && sink_ != nullptr) sink_->OnResultsWritten();
  if (!ok) {
    // The stream is broken (client gone); OnCancel follows.
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "write failed"));
    return;
  }
  if (ordered() && wrote_result_) set_next_to_write(written_index_ + 1);
  MaybeWriteLocked();
}

void BatchCall::OnCancel(bool deadline_passed) {
  const auto why = deadline_passed ? fetch::v1::ERROR_KIND_DEADLINE_EXCEEDED
                                   : fetch::v1::ERROR_KIND_CANCELLED;
  CancelCall(env_, shared_from_this(), why);
  absl::MutexLock lock(&mu_);
  FinishLocked(deadline_passed
                   ? grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                  "deadline exceeded")
                   : grpc::Status::CANCELLED);
}

void BatchCall::OnDone() {
  absl::MutexLock lock(&mu_);
  sink_ = nullptr;
  // Results that were never written give their window slots back, and
  // streamed bytes their room.
  for (Pending& p : ready_) Drop(p);
  for (auto& [index, p] : out_of_order_) Drop(p);
  ready_.clear();
  out_of_order_.clear();
}

void BatchCall::Drop(const Pending& p) {
  OnResultWritten(p.holds_window);
  if (p.stream_bytes > 0) OnStreamWritten(p.stream_bytes);
}

void BatchCall::Stream(Pending p) {
  absl::MutexLock lock(&mu_);
  if (sink_ == nullptr || finished_) {
    Drop(p);
    return;
  }
  ready_.push_back(std::move(p));
  MaybeWriteLocked();
}

void BatchCall::MaybeWriteLocked() {
  if (write_in_flight_ || finished_ || sink_ == nullptr) return;
  if (ready_.empty()) {
    if (unwritten_ == 0 && !input_open_) FinishLocked(end_status_);
    return;
  }
  event_.Clear();
  size_t bytes = 0;
  wrote_result_ = false;
  while (!ready_.empty()) {
    Pending& next = ready_.front();
    const size_t size =
        std::visit([](const auto& m) { return m.ByteSizeLong(); }, next.item);
    if (bytes > 0 && bytes + size > kMaxEventBytes) break;
    bytes += size;
    writing_stream_bytes_ += next.stream_bytes;
    if (auto* result = std::get_if<FetchResult>(&next.item)) {
      if (next.holds_window) ++writing_window_slots_;
      written_index_ = result->index();
      wrote_result_ = true;
      event_.add_results()->Swap(result);
      unwritten_.fetch_sub(1, std::memory_order_release);
    } else if (auto* head = std::get_if<fetch::v1::BodyHead>(&next.item)) {
      event_.add_heads()->Swap(head);
    } else {
      event_.add_chunks()->Swap(&std::get<fetch::v1::BodyChunk>(next.item));
    }
    ready_.pop_front();
  }
  write_in_flight_ = true;
  // OnWriteDone is never run inline from StartWrite (gRPC 1.51), so holding
  // mu_ here can't deadlock. (No buffer_hint: a hinted write may not
  // complete until a later write flushes it, and the next write only starts
  // from OnWriteDone.)
  sink_->StartWrite(&event_);
}

void BatchCall::FinishLocked(const grpc::Status& status) {
  if (finished_ || sink_ == nullptr) return;
  finished_ = true;
  ReportCall(env_, setup_.method, status, setup_.started, /*rejected=*/false);
  sink_->Finish(status);
}

namespace {

class BatchReactor final : public grpc::ServerWriteReactor<FetchEvent>,
                           public EventSink {
 public:
  BatchReactor(grpc::CallbackServerContext* context,
               std::shared_ptr<BatchCall> call)
      : context_(context), call_(std::move(call)) {
    call_->Attach(this);
  }
  // EventSink
  void StartWrite(const FetchEvent* event) override {
    grpc::ServerWriteReactor<FetchEvent>::StartWrite(event);
  }
  void Finish(const grpc::Status& status) override {
    grpc::ServerWriteReactor<FetchEvent>::Finish(status);
  }

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
  const std::shared_ptr<BatchCall> call_;
};

}  // namespace

grpc::ServerWriteReactor<FetchEvent>* MakeBatchReactor(
    grpc::CallbackServerContext* context, std::shared_ptr<BatchCall> call) {
  return new BatchReactor(context, std::move(call));
}

}  // namespace fetchd::api
