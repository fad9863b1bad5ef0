// Batch: the state of one FetchBatch (or Fetch) call that the curl workers
// share: cancellation, the caller's concurrency semaphore and the stream's
// credit window. The API layer subclasses it to receive results.
//
// Flow control. A job may start an attempt only after TryAcquire():
//  - a concurrency slot (at most max_concurrency attempts in flight), freed
//    by ReleaseConcurrency() when the attempt ends;
//  - a window slot (at most `window` results in flight or finished but not
//    yet written to the caller), freed by OnResultWritten() once the result
//    has left, or by ReleaseWindow() when the attempt is retried later.
// A slow reader therefore holds its own batch at `window`, and memory per
// stream stays bounded. Streamed bodies (FetchJob.stream_body) are bounded
// in bytes: SendHead()/SendChunk() count what they hand over until the
// implementation reports it written (OnStreamWritten), and a transfer asks
// StreamHasRoom() before it hands over more; on false it pauses until the
// batch wakes its worker. In ordered mode the job the stream waits for (index
// == next_to_write) may always take a window slot, so a full window of later
// results can't deadlock the batch.
//
// Thread-safety: all methods may be called from any thread. Deliver() is
// called by workers, exactly once per job of the batch.
#ifndef FETCHD_SERVICE_CORE_BATCH_H_
#define FETCHD_SERVICE_CORE_BATCH_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/time/time.h"
#include "fetch/v1/fetch.pb.h"
#include "service/core/politeness/rule.h"

namespace fetchd::core {

// Wakes workers so that they retry dispatching blocked jobs.
class DispatchWaker {
 public:
  virtual ~DispatchWaker() = default;
  // `workers`: bit (i % 64) for worker i. Implementations may skip the
  // calling worker, whose loop dispatches again anyway.
  virtual void Wake(uint64_t workers) = 0;
};

class Batch {
 public:
  struct Options {
    int max_concurrency = 1 << 30;
    int window = 1 << 30;
    bool ordered = false;
    // The RPC's deadline; no attempt or retry is started past it.
    absl::Time deadline = absl::InfiniteFuture();
    // Who made the call (auth::Caller::name; "" for anonymous): the
    // scheduler shares a host fairly between callers first, then between
    // each caller's batches.
    std::string caller;
    // Streamed body bytes handed over and not yet written, past which
    // StreamHasRoom() says no.
    int64_t max_stream_buffer_bytes = 8 << 20;
    // Stricter per-host politeness for this batch's own requests (the
    // scheduler keeps it per host lane; looser asks change nothing).
    politeness::BatchAsk politeness;
  };

  // `waker` must outlive the batch; may be null when nothing ever blocks.
  Batch(const Options& options, DispatchWaker* waker);
  virtual ~Batch() = default;
  Batch(const Batch&) = delete;
  Batch& operator=(const Batch&) = delete;

  // Takes a concurrency and a window slot for the job at `index`. On false
  // the caller keeps the job queued; the batch wakes worker `waiter` (see
  // DispatchWaker) when a slot frees up.
  bool TryAcquire(uint32_t index, int waiter = 0);
  void ReleaseConcurrency();
  void ReleaseWindow();

  // The final result of one job. `holds_window` says whether the job still
  // holds a window slot, which the implementation returns through
  // OnResultWritten() when the result has been written. The implementation
  // may hold results until Flush(), so that a burst goes out together.
  virtual void Deliver(fetch::v1::FetchResult result, bool holds_window) = 0;
  // Sends what Deliver() held. Whoever calls Deliver() calls Flush() after
  // its burst (a worker: once per loop iteration).
  virtual void Flush() {}

  // Streamed bodies, from the worker that runs the job: the response head,
  // then the body's chunks in order. Counted as buffered until written.
  void SendHead(fetch::v1::BodyHead head);
  void SendChunk(fetch::v1::BodyChunk chunk);
  // Whether the job's transfer may hand over more body now. On false the
  // batch wakes worker `waiter` (see DispatchWaker) once the buffer has
  // drained below the bound; a release racing with this call is never lost.
  bool StreamHasRoom(int waiter);
  // The implementation wrote (or dropped) `bytes` of what DeliverHead or
  // DeliverChunk passed on.
  void OnStreamWritten(int64_t bytes);
  // Streamed bytes buffered now, and the most ever: for tests and metrics.
  int64_t stream_buffered() const {
    return stream_buffered_.load(std::memory_order_relaxed);
  }
  int64_t stream_buffered_high_water() const {
    return stream_high_water_.load(std::memory_order_relaxed);
  }

  // Marks the batch cancelled with `why` (CANCELLED or DEADLINE_EXCEEDED).
  // Returns true for the first call only. Jobs not yet finished end with
  // `why` once their worker processes the cancellation.
  bool Cancel(fetch::v1::ErrorKind why);
  bool cancelled() const {
    return cancel_error() != fetch::v1::ERROR_KIND_NONE;
  }
  // NONE until cancelled.
  fetch::v1::ErrorKind cancel_error() const {
    return cancel_error_.load(std::memory_order_acquire);
  }

  absl::Time deadline() const { return options_.deadline; }
  const std::string& caller() const { return options_.caller; }
  const politeness::BatchAsk& politeness() const { return options_.politeness; }
  bool ordered() const { return options_.ordered; }

  // Called by the owner when a result has been written to the caller.
  void OnResultWritten(bool held_window);
  // Ordered mode: the index of the next result the stream will write.
  void set_next_to_write(uint32_t index) {
    next_to_write_.store(index, std::memory_order_seq_cst);
    WakeIfStarved(starved_window_);
  }

  // Window slots in use now (in flight + finished, unwritten): for tests and
  // metrics.
  int window_in_use() const {
    return static_cast<int>(slots_.load(std::memory_order_relaxed) >> 32);
  }
  int window_high_water() const {
    return window_high_water_.load(std::memory_order_relaxed);
  }

 protected:
  // Receive what SendHead/SendChunk pass on, counted as `bytes`; must call
  // OnStreamWritten(bytes) once it is written or dropped. Default: dropped
  // (a call that can't stream).
  virtual void DeliverHead(fetch::v1::BodyHead head, int64_t bytes) {
    (void)head;
    OnStreamWritten(bytes);
  }
  virtual void DeliverChunk(fetch::v1::BodyChunk chunk, int64_t bytes) {
    (void)chunk;
    OnStreamWritten(bytes);
  }

 private:
  enum class Shortage { kNone, kConcurrency, kWindow };
  void WakeIfStarved(std::atomic<uint64_t>& starved);
  // One attempt at taking both slots at once; no side effects on failure.
  Shortage TryAcquireOnce(uint32_t index);
  // Adds `bytes` to the streamed bytes buffered (and the high-water mark).
  void CountStreamed(int64_t bytes);

  const Options options_;
  DispatchWaker* const waker_;
  // Both counters in one word so that a slot pair is taken atomically:
  // attempts in flight in the low 32 bits, window slots used in the high.
  std::atomic<uint64_t> slots_{0};
  std::atomic<int> window_high_water_{0};
  std::atomic<uint32_t> next_to_write_{0};
  // Workers with a job of this batch blocked on a concurrency / a window
  // slot (DispatchWaker bits); each release wakes only its waiters.
  std::atomic<uint64_t> starved_concurrency_{0};
  std::atomic<uint64_t> starved_window_{0};
  std::atomic<int64_t> stream_buffered_{0};
  std::atomic<int64_t> stream_high_water_{0};
  // Workers with a transfer paused for stream room.
  std::atomic<uint64_t> starved_stream_{0};
  std::atomic<fetch::v1::ErrorKind> cancel_error_{fetch::v1::ERROR_KIND_NONE};
};

}  // namespace fetchd::core

#endif  // FETCHD_SERVICE_CORE_BATCH_H_
