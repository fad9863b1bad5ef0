// BatchCall: the result stream of one FetchBatch call, or of a FetchStream
// (whose StreamCall adds requests as it reads them: open input). Workers
// deliver results (and the heads and chunks of streamed bodies); the call
// orders them if asked, coalesces what finished during the previous write
// into one FetchEvent (up to kMaxEventBytes), and writes one message at a
// time through its EventSink. Window slots and streamed bytes are given
// back once their message is written (or dropped), which is what bounds a
// stream's memory. The call ends once every request has its result
// written and its input has ended.
//
// Lifetime: shared by the gRPC reactor (MakeBatchReactor, or the
// StreamCall) and the jobs the fetcher holds; outlives the reactor while
// workers still hold jobs.
//
// Thread-safety: Deliver/DeliverHead/DeliverChunk/Flush come from workers,
// the reactor's callbacks from gRPC threads; the stream state is under mu_.
#ifndef FETCHD_SERVICE_API_BATCH_CALL_H_
#define FETCHD_SERVICE_API_BATCH_CALL_H_

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <variant>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fetch/v1/fetch.pb.h"
#include "service/api/call_env.h"
#include "service/api/call_gate.h"
#include "service/core/batch.h"

namespace fetchd::api {

// Results that finished during the previous write go out in one message, up
// to this many bytes (a larger single result goes alone). Well below gRPC's
// 4 MiB default receive limit.
inline constexpr size_t kMaxEventBytes = 1 << 20;

// Where a BatchCall's messages go: its gRPC reactor. Called with the
// call's lock held: an implementation must not call back into the call.
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void StartWrite(const fetch::v1::FetchEvent* event) = 0;
  virtual void Finish(const grpc::Status& status) = 0;
  // A message with results was written (BatchCall::unwritten() is
  // lower). Default: nothing.
  virtual void OnResultsWritten() {}
};

class BatchCall final : public core::Batch,
                        public CancellableCall,
                        public std::enable_shared_from_this<BatchCall> {
 public:
  struct Setup {
    core::CallMethod method = core::CallMethod::kFetchBatch;
    bool fail_fast = false;
    // Requests known at the start (a FetchBatch's).
    int64_t total = 0;
    // More requests may come (AddRequests) until EndInput(): a FetchStream.
    bool open_input = false;
    // When the handler started (env.clock).
    absl::Time started;
  };

  // The call ends, OK, once every request has its result written and the
  // input has ended.
  BatchCall(const Options& options, const CallEnv& env, const Setup& setup,
            std::unique_ptr<CallGate::Ticket> ticket);
  ~BatchCall() override;

  // The sink that writes; null once gRPC is done with the call.
  void Attach(EventSink* sink);

  // Open input: `n` more requests are about to be submitted (false, and
  // nothing changes, once the input has ended). The call's admission must
  // already count them (Ticket::TryAddRequests).
  [[nodiscard]] bool AddRequests(int64_t n);
  // No more requests will come; once the last result is written the call
  // ends with `status` (the first reason given wins).
  void EndInput(const grpc::Status& status);
  // Requests without a written result (lock-free).
  int64_t unwritten() const {
    return unwritten_.load(std::memory_order_acquire);
  }

  // core::Batch
  void Deliver(fetch::v1::FetchResult result, bool holds_window) override;
  void Flush() override;

  // CancellableCall
  void CancelForShutdown() override;
  // Ends an open input with UNAVAILABLE (a drain).
  void StopReading() override;
  // Ends the call's unfinished requests with DEADLINE_EXCEEDED results
  // `env.deadline_margin` before `rpc_deadline` (env.clock), so they still
  // reach the caller. Call once, after the call is shared.
  void CutBeforeDeadline(absl::Time rpc_deadline);
  // The call's admission (to register the call for CancelAll()).
  CallGate::Ticket& ticket() { return *ticket_; }

  // From the reactor.
  void OnWriteDone(bool ok);
  // Client cancel, deadline, or broken connection.
  void OnCancel(bool deadline_passed);
  void OnDone();

 protected:
  void DeliverHead(fetch::v1::BodyHead head, int64_t bytes) override;
  void DeliverChunk(fetch::v1::BodyChunk chunk, int64_t bytes) override;

 private:
  struct Pending {
    std::variant<fetch::v1::FetchResult, fetch::v1::BodyHead,
                 fetch::v1::BodyChunk>
        item;
    bool holds_window = false;
    // Counted by the batch's stream buffer (heads and chunks).
    int64_t stream_bytes = 0;
  };

  // Gives back what `p` holds, when it will never be written.
  void Drop(const Pending& p);
  void Stream(Pending p);
  void MaybeWriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FinishLocked(const grpc::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const CallEnv env_;
  const Setup setup_;
  // The call's admission; released when the call ends.
  const std::unique_ptr<CallGate::Ticket> ticket_;
  // The cut scheduled by CutBeforeDeadline(), dropped when the call ends.
  std::optional<DeadlineTimer::Key> deadline_cut_;

  absl::Mutex mu_;
  EventSink* sink_ ABSL_GUARDED_BY(mu_) = nullptr;
  bool input_open_ ABSL_GUARDED_BY(mu_);
  // What the call ends with once input has ended and all is written.
  grpc::Status end_status_ ABSL_GUARDED_BY(mu_);
  // Results ready to write, in write order.
  std::deque<Pending> ready_ ABSL_GUARDED_BY(mu_);
  // Ordered mode: results that wait for an earlier index.
  std::map<uint32_t, Pending> out_of_order_ ABSL_GUARDED_BY(mu_);
  uint32_t next_index_ ABSL_GUARDED_BY(mu_) = 0;
  // Results not yet handed to StartWrite.
  // Changed under mu_; read lock-free by unwritten().
  std::atomic<int64_t> unwritten_{0};
  fetch::v1::FetchEvent event_ ABSL_GUARDED_BY(mu_);
  bool write_in_flight_ ABSL_GUARDED_BY(mu_) = false;
  // Window slots held by the results of the message being written.
  int writing_window_slots_ ABSL_GUARDED_BY(mu_) = 0;
  // Streamed bytes (heads, chunks) in the message being written.
  int64_t writing_stream_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  // The message being written has results; written_index_ is its last.
  bool wrote_result_ ABSL_GUARDED_BY(mu_) = false;
  uint32_t written_index_ ABSL_GUARDED_BY(mu_) = 0;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

// The gRPC reactor of a FetchBatch `call`, which it attaches to; deletes
// itself when gRPC is done with it.
grpc::ServerWriteReactor<fetch::v1::FetchEvent>* MakeBatchReactor(
    grpc::CallbackServerContext* context, std::shared_ptr<BatchCall> call);

}  // namespace fetchd::api

#endif  // FETCHD_SERVICE_API_BATCH_CALL_H_
