// StreamCall: one FetchStream call — an open-ended FetchBatch. It reads the
// caller's messages one at a time, admits each message's requests into the
// call (CallGate::Ticket::TryAddRequests) and submits them through the
// request pipeline (SubmitRequests) into one BatchCall, which writes the
// results back exactly as for FetchBatch (ordering, coalescing, streamed
// bodies, window).
//
// Flow control, both ways:
//  - Input: the next message is read only while fewer than `read_window`
//    of the stream's requests are without a written result (one message
//    may take it past that by its size, at most limits.max_batch_size).
//    Otherwise no read is posted, gRPC's flow control fills up and the
//    sender blocks: fetchd never buffers more than that of a stream.
//  - Admission: a message's requests count against limits.max_pending and
//    the caller's max_pending once read. When they don't fit, the message
//    waits (nothing more is read) and is admitted as soon as they do: after
//    each of the stream's own results, and every kAdmitRetry otherwise. An
//    open stream with nothing in flight counts for nothing.
//  - Output: a slow reader of results holds its stream at its window, as a
//    batch (core::Batch).
//
// The first message may carry the options (a BatchRequest without
// requests); options in a later message, a message with more requests than
// limits.max_batch_size, or more than 2^32 - 1 requests in all stop the
// reading, and the stream ends with INVALID_ARGUMENT once what was read has
// its results. Half-close ends the input (then OK); a drain (StopReading)
// ends it with UNAVAILABLE; fail_fast ends it with ABORTED; a cancel or the
// deadline end the call as for a batch.
//
// Lifetime: shared by its gRPC reactor (MakeStreamReactor) and the timer of
// an admission retry; the BatchCall it makes outlives it while workers hold
// jobs.
//
// Thread-safety: reactor callbacks come from gRPC threads, results (and
// OnResultsWritten, with the BatchCall's lock held) from workers and gRPC
// threads, retries from the deadline timer. State is under mu_; lock order
// BatchCall's lock, then mu_: nothing here calls into the BatchCall while
// holding mu_, except its lock-free unwritten().
#ifndef FETCHD_SERVICE_API_STREAM_CALL_H_
#define FETCHD_SERVICE_API_STREAM_CALL_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fetch/v1/fetch.grpc.pb.h"
#include "fetch/v1/fetch.pb.h"
#include "service/api/batch_call.h"
#include "service/api/call_env.h"
#include "service/api/call_gate.h"
#include "service/api/deadline_timer.h"
#include "service/api/request_validation.h"
#include "service/auth/caller_auth.h"
#include "service/core/batch.h"
#include "service/core/cookie_store.h"

namespace fetchd::api {

// How often a message that did not fit the pending limits is tried again
// when none of the stream's own results frees room.
inline constexpr absl::Duration kAdmitRetry = absl::Milliseconds(100);

class StreamCall final : public CancellableCall,
                         public EventSink,
                         public std::enable_shared_from_this<StreamCall> {
 public:
  // What the stream's options (the first message's, or none) make of it.
  struct Opened {
    core::Batch::Options options;
    bool fail_fast = false;
    std::shared_ptr<core::CookieStore> cookie_jar;
    // The server's defaults with the stream's laid over them.
    fetch::v1::FetchRequest defaults;
    bool defaults_set_queue_timeout = false;
  };
  // Validates options (a BatchRequest without requests); InvalidArgument
  // naming the field.
  using Opener =
      std::function<absl::StatusOr<Opened>(const fetch::v1::BatchRequest&)>;

  struct Setup {
    // Must outlive the call.
    const RequestValidator* validator = nullptr;
    auth::Caller caller;
    Opener opener;
    // limits.stream_window and limits.max_batch_size.
    int64_t read_window = 1024;
    int64_t max_message_requests = 10000;
    // When the handler started, and the RPC's deadline (env.clock).
    absl::Time started;
    absl::Time deadline = absl::InfiniteFuture();
  };

  StreamCall(const CallEnv& env, Setup setup,
             std::unique_ptr<CallGate::Ticket> ticket);

  // Posts the first read; call once, when the call is shared.
  void Start(grpc::ServerBidiReactor<fetch::v1::FetchStreamRequest,
                                     fetch::v1::FetchEvent>* reactor);
  // The call's admission, to register it with the gate before Start().
  CallGate::Ticket& ticket() { return *ticket_view_; }

  // From the reactor.
  void OnReadDone(bool ok);
  void OnWriteDone(bool ok);
  void OnCancel(bool deadline_passed);
  void OnDone();

  // EventSink (from the BatchCall, its lock held).
  void StartWrite(const fetch::v1::FetchEvent* event) override;
  void Finish(const grpc::Status& status) override;
  void OnResultsWritten() override;

  // CancellableCall
  void CancelForShutdown() override;
  void StopReading() override;

 private:
  // The first message: makes the BatchCall. False when the stream ended.
  bool Open(const fetch::v1::BatchRequest& options);
  // Checks, admits and submits the message in in_; on return the message
  // is submitted, parked (parked_) or the input has ended.
  void Take();
  // Submits in_'s requests, admitted already.
  void Submit();
  // No more input is read; the BatchCall, if made.
  std::shared_ptr<BatchCall> StopInput();
  // Ends the input; the stream ends with `status` after the last result.
  void EndInput(const grpc::Status& status);
  // Ends a stream that never made its BatchCall.
  void FinishEarly(const grpc::Status& status, bool rejected);
  // The read of in_ (or its admission) is over: read on if there is room.
  void ReadOn();
  void MaybeReadLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Tries to admit the parked message again after `delay`.
  void ScheduleRetryLocked(absl::Duration delay)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RetryParked();

  const CallEnv env_;
  const Setup setup_;
  // Held until Open() hands it to the BatchCall; ticket_view_ stays valid
  // as long as the call (its BatchCall) lives.
  std::unique_ptr<CallGate::Ticket> ticket_;
  CallGate::Ticket* const ticket_view_;

  // The message being read or taken: only the thread that holds the read
  // (reading_ or parked_) touches it.
  fetch::v1::FetchStreamRequest in_;
  // Index of the next request the stream reads (Take/Submit only).
  uint32_t next_index_ = 0;
  // Set by Open(): only the reading thread uses them after.
  Opened opened_;

  absl::Mutex mu_;
  grpc::ServerBidiReactor<fetch::v1::FetchStreamRequest, fetch::v1::FetchEvent>*
      reactor_ ABSL_GUARDED_BY(mu_) = nullptr;
  std::shared_ptr<BatchCall> batch_ ABSL_GUARDED_BY(mu_);
  // A read is posted, or its message is being taken.
  bool reading_ ABSL_GUARDED_BY(mu_) = false;
  // in_ waits for room in the pending limits.
  bool parked_ ABSL_GUARDED_BY(mu_) = false;
  // The admission retry scheduled (its time first), if any.
  std::optional<DeadlineTimer::Key> retry_ ABSL_GUARDED_BY(mu_);
  // No more input is read.
  bool input_done_ ABSL_GUARDED_BY(mu_) = false;
  // Finished before its BatchCall was made.
  bool finished_early_ ABSL_GUARDED_BY(mu_) = false;
  // Since when the stream waits for room (InfinitePast: it doesn't).
  absl::Time waiting_since_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

// The gRPC reactor of `call`; deletes itself when gRPC is done with it.
grpc::ServerBidiReactor<fetch::v1::FetchStreamRequest, fetch::v1::FetchEvent>*
MakeStreamReactor(grpc::CallbackServerContext* context,
                  std::shared_ptr<StreamCall> call);

}  // namespace fetchd::api

#endif  // FETCHD_SERVICE_API_STREAM_CALL_H_
