// FakeFetcher: a core::Fetcher whose jobs end only when the test says so,
// and with the result the test chooses, for testing the API layer without
// curl. With each job it does what a curl worker does (transport/
// curl_worker.cc): a job starts only once it holds a concurrency and a
// window slot of its batch (Batch::TryAcquire); it ends with exactly one
// Batch::Deliver() — a started job gives its concurrency slot back first
// and delivers with its window slot, a job that never started delivers
// without one — followed by Batch::Flush(); a streamed body goes out with
// Batch::SendHead/SendChunk; and a cancelled batch's unfinished jobs end
// with the batch's cancel_error().
//
// It has no thread and never sleeps. Queued jobs start (as far as their
// batch's slots allow, in the order they were submitted) on the thread that
// submits them, that frees a slot (the batch's Wake()) or that finishes a
// job. CancelBatch() only records the request; RunCancellations() carries
// it out, the way a worker does on its next turn, so the test decides when.
//
// Jobs are numbered in the order they were submitted, from 0, across calls.
// A job gives up its batch when it ends, as a worker drops a finished job,
// so that the call can end.
//
// Thread-safety: every method may be called from any thread. The fake never
// holds its lock while it calls into a batch, except for TryAcquire(),
// which takes no lock.
#ifndef FETCHD_TESTS_API_FAKE_FETCHER_H_
#define FETCHD_TESTS_API_FAKE_FETCHER_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "fetch/v1/fetch.pb.h"
#include "service/core/batch.h"
#include "service/core/fetch_job.h"
#include "service/core/fetcher.h"

namespace fetchd::testing {

class FakeFetcher final : public core::Fetcher {
 public:
  enum class State { kQueued, kRunning, kDone };

  // How long the Await* methods wait before they give up.
  static constexpr absl::Duration kWait = absl::Seconds(30);

  FakeFetcher() = default;
  FakeFetcher(const FakeFetcher&) = delete;
  FakeFetcher& operator=(const FakeFetcher&) = delete;

  // core::Fetcher
  void Submit(std::vector<std::unique_ptr<core::FetchJob>> jobs) override;
  void CancelBatch(const std::shared_ptr<core::Batch>& batch) override;
  void Wake(uint64_t workers) override;
  core::FetcherStats stats() const override;
  // An empty store; the fake keeps no cookies.
  absl::StatusOr<std::shared_ptr<core::CookieStore>> NewCookieStore(
      const google::protobuf::RepeatedPtrField<fetch::v1::Cookie>& initial,
      absl::string_view field) override;

  // Counters: jobs submitted, jobs that ever started, jobs ended, calls of
  // CancelBatch(), calls of Wake().
  size_t submitted() const;
  size_t started() const;
  size_t done() const;
  int cancel_requests() const;
  int wakes() const;

  // Wait (up to kWait) until the counter reaches `n`; false on timeout.
  bool AwaitSubmitted(size_t n);
  bool AwaitStarted(size_t n);
  bool AwaitCancelRequests(int n);

  State state(size_t job) const;
  // The job's request as the API built it (its url, id, index...).
  const core::FetchJob& job(size_t job) const;

  // Ends running job `job` with `result`; the fake fills in id, index and
  // (if empty) final_url, as a worker does. Then starts what may start.
  void Finish(size_t job, fetch::v1::FetchResult result);
  // Finish() with status 200 and `body`.
  void FinishOk(size_t job, const std::string& body = "");
  // Streams the response head / one body chunk of running job `job` (index
  // filled in).
  void SendHead(size_t job, fetch::v1::BodyHead head);
  void SendChunk(size_t job, fetch::v1::BodyChunk chunk);

  // Ends every unfinished job of every batch cancelled so far with the
  // batch's cancel_error(), as a worker's CancelBatch does; returns how
  // many it ended.
  size_t RunCancellations();

 private:
  struct Entry {
    std::unique_ptr<core::FetchJob> job;
    State state = State::kQueued;
  };

  // Starts the queued jobs whose batch gives them both slots.
  void DispatchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The batch of running job `job`, now marked done; null (with a test
  // failure) if it isn't running.
  std::shared_ptr<core::Batch> TakeRunning(size_t job) ABSL_LOCKS_EXCLUDED(mu_);
  // Waits until `reached` holds; false on timeout.
  template <typename Pred>
  bool Await(Pred reached) ABSL_LOCKS_EXCLUDED(mu_);

  mutable absl::Mutex mu_;
  std::vector<Entry> entries_ ABSL_GUARDED_BY(mu_);
  size_t started_ ABSL_GUARDED_BY(mu_) = 0;
  size_t done_ ABSL_GUARDED_BY(mu_) = 0;
  int cancel_requests_ ABSL_GUARDED_BY(mu_) = 0;
  int wakes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace fetchd::testing

#endif  // FETCHD_TESTS_API_FAKE_FETCHER_H_
