// CurlWorker: one thread that owns a curl multi handle, its easy handles and
// the HostScheduler of the hosts sharded to it. It runs the canonical
// curl-multi loop (curl_multi_perform / curl_multi_poll); other threads only
// Post() work to its inbox, which wakes it with curl_multi_wakeup. No curl
// handle ever crosses threads.
//
// Politeness: the worker owns a politeness::HostLimiter over the hosts
// sharded to it (a LocalHostLimiter, or what Options::make_limiter makes:
// the cluster's), which its scheduler consults for every start; each
// attempt's end is reported to it (AttemptResultOf), and every retry takes
// a place in its host's retry budget first (a denied retry ends the request
// with its last error). Requests the limiter refuses (queue full, breaker
// open) end at once, without a connection attempt.
//
// Each loop iteration: run posted tasks (new jobs, cancellations), expire
// jobs past their queue timeout, abort transfers past their read-idle
// timeout, start the jobs the scheduler allows, finish the jobs the limiter
// refused, unpause streamed transfers
// whose batch has room again (the batch wakes the worker when its stream
// drains), drive curl, then handle finished transfers: retry after backoff
// or deliver the result. A streamed body is sent to its batch by the
// transfer as it arrives; a request whose BodyHead was sent is not retried.
#ifndef FETCHD_SERVICE_TRANSPORT_CURL_WORKER_H_
#define FETCHD_SERVICE_TRANSPORT_CURL_WORKER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/random/random.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "service/common/clock.h"
#include "service/core/fetch_observer.h"
#include "service/core/fetcher.h"
#include "service/core/host_scheduler.h"
#include "service/core/politeness/local_host_limiter.h"
#include "service/core/politeness/rule_set.h"
#include "service/policy/destination_gate.h"
#include "service/transport/curl_handles.h"
#include "service/transport/curl_transfer.h"

namespace fetchd::transport {

class CurlWorker;

// Where a job goes when a redirect moves it to another host: the worker that
// owns that host, so per-host limits and connection reuse stay in one
// thread. The pool fills it before any job is submitted.
// Makes a worker's HostLimiter over `rules` from the options a
// LocalHostLimiter would get; `wake` wakes the worker (any thread).
using LimiterFactory =
    std::function<std::unique_ptr<core::politeness::HostLimiter>(
        std::shared_ptr<const core::politeness::RuleSet> rules,
        const core::politeness::LocalHostLimiter::Options& options,
        std::function<void()> wake)>;

struct JobRouter {
  virtual ~JobRouter() = default;
  // The worker that owns `host_key`.
  virtual CurlWorker* WorkerFor(const std::string& host_key) const = 0;
};

class CurlWorker {
 public:
  struct Options {
    int index = 0;
    core::HostScheduler::Limits limits;
    // The politeness rules of every host (shared by the pool's workers).
    // Null: today's behaviour, a default rule of max_per_host attempts per
    // host and nothing else (no rate, no breaker, no retry budget, no queue
    // bound, no host-wide pause).
    std::shared_ptr<const core::politeness::RuleSet> politeness;
    // Attempts in flight per host when `politeness` is null; >= 1.
    int max_per_host = 16;
    // The host-wide pause after 429/503 (with `politeness` only).
    core::politeness::HostBackoffConfig pause;
    // Empty: a LocalHostLimiter (limits per replica).
    LimiterFactory make_limiter;
    // Told about attempts and results; null for none.
    core::FetchObserver* observer = nullptr;
    // Where every redirect hop and connection may go; null for no checks
    // (engine tests only).
    const policy::DestinationGate* destinations = nullptr;
    // Null: redirect hops stay on this worker.
    const JobRouter* router = nullptr;
    // Connection settings of every transfer.
    TransferSettings settings;
    // Idle connections kept for reuse; 0: max(limits.max_in_flight, 16).
    int max_cached_connections = 0;
  };

  // Creates the multi handle and starts the thread. `clock` must outlive the
  // worker, and so must the observer, policy and router of `options`.
  // `options.index` identifies the worker in its pool (see
  // core::DispatchWaker).
  static absl::StatusOr<std::unique_ptr<CurlWorker>> Start(
      const Options& options, const Clock* clock);
  // The index of the worker running the calling thread; -1 elsewhere.
  static int CurrentIndex();
  // Stop()s.
  ~CurlWorker();
  CurlWorker(const CurlWorker&) = delete;
  CurlWorker& operator=(const CurlWorker&) = delete;

  // Any thread. Jobs submitted once the worker has stopped taking work end
  // at once with CANCELLED ("server shutting down"), on the calling thread.
  void Submit(std::vector<std::unique_ptr<core::FetchJob>> jobs);
  // Queues a job that continues at a redirect target (it holds no slot).
  // False, and `job` untouched, once the worker has stopped taking work.
  [[nodiscard]] bool SubmitHop(std::unique_ptr<core::FetchJob>& job);
  void CancelBatch(std::shared_ptr<core::Batch> batch);
  void Wake();
  // Ends every job left with CANCELLED ("shutting down") and joins the
  // thread. Idempotent.
  void Stop();

  core::FetcherStats stats() const;

 private:
  using Task = absl::AnyInvocable<void() &&>;

  CurlWorker(const Options& options, const Clock* clock, CurlMultiPtr multi,
             std::shared_ptr<const core::politeness::RuleSet> rules);
  // False once the worker has stopped taking work (the task is dropped).
  [[nodiscard]] bool Post(Task task);
  // The final result of a job that came after the worker stopped; any
  // thread (it touches only the job's batch).
  static void RefuseStopped(core::FetchJob& job);
  // scheduler_.Release() of `job`'s attempt, logging a release the
  // scheduler didn't expect.
  void ReleaseHost(core::FetchJob& job,
                   const core::politeness::AttemptResult& result,
                   absl::Time now);
  // Ends the jobs the limiter refused (breaker open, queue full).
  void FinishRejected();
  void Run();
  void RunInbox();
  void ExpireQueued(absl::Time now);
  void AbortIdle(absl::Time now);
  // Unpauses the transfers paused for stream room whose batch has drained.
  void ResumePaused(absl::Time now);
  // Sends the partial chunks that streamed transfers hold.
  void SendPartialChunks();
  void Dispatch(absl::Time now);
  void StartAttempt(std::unique_ptr<core::FetchJob> job, absl::Time now);
  void HandleDone(CURL* easy, CURLcode code, absl::Time now);
  // Takes a running transfer out of the multi and frees its batch slot; the
  // caller releases its host with the attempt's result (ReleaseHost).
  std::unique_ptr<Transfer> Detach(CURL* easy);
  void FinishAttempt(std::unique_ptr<Transfer> transfer, CURLcode code,
                     absl::Time now);
  // The attempt ended in a redirect to follow: checks the hop and queues
  // the job at its target, or delivers why it can't go on.
  void FollowRedirect(std::unique_ptr<Transfer> transfer,
                      const core::AttemptOutcome& outcome, absl::Time now);
  // Reports a finished attempt to the observer, if any.
  void ReportAttempt(const core::FetchJob& job,
                     const fetch::v1::FetchResult& attempt,
                     const core::AttemptOutcome& outcome,
                     std::optional<core::RetryReason> retry);
  void CancelBatchNow(const core::Batch* batch);
  void CancelAll(absl::string_view why);
  // Ends the running transfers of `batch` (all of them when null) with
  // `kind` and `message`.
  void CancelRunning(const core::Batch* batch, fetch::v1::ErrorKind kind,
                     const std::string& message);
  // Delivers a final result for a job that holds no window slot.
  void DeliverEarly(std::unique_ptr<core::FetchJob> job,
                    fetch::v1::ErrorKind kind, std::string message);
  void Deliver(core::FetchJob& job, fetch::v1::FetchResult result,
               bool holds_window);
  CurlEasyPtr AcquireEasy();
  void RecycleEasy(CurlEasyPtr easy);
  // Publishes the gauges, and the politeness stats when `now` is past
  // their next refresh (never with InfinitePast).
  void PublishStats(absl::Time now);
  // Flushes the batches that got results since the last call.
  void FlushDelivered();

  const int index_;
  const Clock* const clock_;
  core::FetchObserver* const observer_;                // may be null
  const policy::DestinationGate* const destinations_;  // may be null
  const JobRouter* const router_;                      // may be null
  const TransferSettings settings_;
  CurlMultiPtr multi_;
  std::thread thread_;
  std::atomic<bool> stopping_{false};

  absl::Mutex inbox_mu_;
  std::vector<Task> inbox_ ABSL_GUARDED_BY(inbox_mu_);
  // Set by the thread's last inbox run: later tasks would never run.
  bool closed_ ABSL_GUARDED_BY(inbox_mu_) = false;

  // Owned by the worker thread. The scheduler consults the limiter.
  std::unique_ptr<core::politeness::HostLimiter> limiter_;
  core::HostScheduler scheduler_;
  absl::flat_hash_map<CURL*, std::unique_ptr<Transfer>> running_;
  std::vector<CurlEasyPtr> idle_easy_;
  // Transfers that paused for room in their batch's stream (Transfer
  // adds itself; entries may be stale: checked against running_).
  std::vector<CURL*> paused_;
  // Streamed transfers holding less than a chunk (same rules).
  std::vector<CURL*> partial_;
  absl::BitGen rng_;
  absl::Time next_idle_check_ = absl::InfiniteFuture();
  // Batches given results in this loop iteration (see Batch::Flush).
  std::vector<std::shared_ptr<core::Batch>> delivered_;

  std::atomic<int64_t> stat_in_flight_{0};
  std::atomic<int64_t> stat_queued_{0};
  std::atomic<int64_t> stat_delayed_{0};
  absl::Time next_politeness_stats_ = absl::InfinitePast();
  mutable absl::Mutex stats_mu_;
  std::vector<core::politeness::RuleStats> politeness_stats_
      ABSL_GUARDED_BY(stats_mu_);
};

}  // namespace fetchd::transport

#endif  // FETCHD_SERVICE_TRANSPORT_CURL_WORKER_H_
