// HostScheduler: decides which queued job starts next on one curl worker.
//
// - Politeness: every start is asked of the worker's politeness::HostLimiter
//   (see host_limiter.h for the protocol): per-host concurrency, rate and
//   least delay, the host-wide pause after 429/503 and the circuit breaker
//   all come from it. Jobs wait here, not inside curl, so their wait is
//   queue wait and never charged to the transfer timeout. A host the
//   limiter holds waits without being looked at: until the time the limiter
//   names (rate, delay, pause, open breaker), or until an attempt at it ends
//   (concurrency), or until the limiter wakes it (TakeWoken: a shared
//   limiter's grants came).
// - Refusals: a new job the limiter refuses (the host's queue is full, its
//   breaker admits nothing) is not queued but handed back by
//   TakeRejected(), for the worker to finish at once - unless the breaker
//   is open and the job asked to wait for it (wait_for_open_breaker) and
//   its queue timeout lasts until the breaker admits again: then it waits
//   (TakeExpired still bounds it). When a breaker opens while jobs are
//   queued, the same rule sorts them.
// - Global limit: at most `max_in_flight` attempts in flight on this worker.
// - Fairness: each host keeps one FIFO lane per batch, grouped by the
//   batch's caller (Batch::caller()). A host serves its callers round-robin
//   and, within a caller, that caller's lanes round-robin: with callers A
//   (two batches) and B (one) waiting for one host, starts go A1 B A2 B ...
//   so B gets half the host however many batches A opens, and a small batch
//   started after a huge one of the same caller is interleaved with it.
// - A batch's own stricter limits (Batch::politeness(): attempts in flight
//   and starts per second per host) hold its lane only; a looser ask
//   changes nothing, since the host's rule holds every lane anyway. The
//   turn passes only when a job starts: a job held by the limiter (a rate
//   wait) keeps its turn, so rate limits keep the interleaving. Hosts are
//   served round-robin too; the global max_in_flight is not shared per
//   caller (a caller's share of it follows from the hosts it uses;
//   per-caller admission limits bound what it can queue).
// - Flow control: a job starts only when its batch grants a slot
//   (Batch::TryAcquire); a batch that can't is skipped, not waited on. The
//   batch is asked first and its slots given back if the limiter says wait,
//   so that a blocked batch never spends a host's rate.
// - Retries wait in a timer list until their backoff ends, then join the
//   front of their lane. A retry holds a place in its host's retry budget
//   (TryRetry) until its attempt ends or the job leaves the scheduler.
// - Queue timeout: a job that waited longer than its queue_timeout is taken
//   out by TakeExpired().
//
// Time is passed in by the caller: the scheduler never reads a clock.
// Thread-safety: none; one worker thread owns each instance, and its
// limiter.
#ifndef FETCHD_SERVICE_CORE_HOST_SCHEDULER_H_
#define FETCHD_SERVICE_CORE_HOST_SCHEDULER_H_

#include <cstddef>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/node_hash_map.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "service/core/fetch_job.h"
#include "service/core/politeness/host_limiter.h"

namespace fetchd::core {

class HostScheduler {
 public:
  struct Limits {
    int max_in_flight = 1024;
  };
  using JobList = std::vector<std::unique_ptr<FetchJob>>;
  // A job the limiter refused, and why.
  struct Rejected {
    std::unique_ptr<FetchJob> job;
    politeness::Rejection rejection;
  };

  // `limiter` must outlive the scheduler; the scheduler is its only caller
  // for queueing and starts. `worker` identifies the owner to
  // Batch::TryAcquire, so that a batch that frees a slot wakes only the
  // workers waiting for it.
  HostScheduler(const Limits& limits, politeness::HostLimiter& limiter,
                int worker = 0)
      : limits_(limits), limiter_(limiter), worker_(worker) {}

  // Queues a new job; its queue wait starts at `now`. A job the limiter
  // refuses (CheckQueue) is not queued: it waits in TakeRejected().
  void Enqueue(std::unique_ptr<FetchJob> job, absl::Time now);
  // Queues `job` again once `due` has come (a retry after backoff). A retry
  // is not a new request: it is not checked against the host's max_queue.
  void EnqueueAt(std::unique_ptr<FetchJob> job, absl::Time due);

  // The next job that may start at `now`, or null. The job's batch slots and
  // the limiter's admission (kept in job->permit) are taken; its queue wait
  // is added to job->queue_wait. Call Release() when the attempt ends.
  [[nodiscard]] std::unique_ptr<FetchJob> Next(absl::Time now);
  // The attempt of `job` (started by Next, at job.host_key) ended at `now`
  // with `result`: gives its permit back to the limiter and, if the attempt
  // was a retry, its place in the retry budget. A job whose host has no
  // attempt in flight is a caller bug: it asserts in debug builds;
  // otherwise nothing changes and false comes back for the caller to log.
  [[nodiscard]] bool Release(FetchJob& job,
                             const politeness::AttemptResult& result,
                             absl::Time now);

  // Takes a place in the retry budget of job.host_key for `job`'s next
  // attempt, after Release() of the failed one and before EnqueueAt(). The
  // place is given back when that attempt ends (Release) or the job leaves
  // the scheduler (Take*). ResourceExhausted, naming the rule and the
  // budget: no retry may be made.
  [[nodiscard]] absl::Status TryRetry(FetchJob& job, absl::Time now);

  // The jobs refused since the last call (by Enqueue, or taken out of the
  // queue when their host's breaker opened); their queue wait is added.
  [[nodiscard]] std::vector<Rejected> TakeRejected();
  // Jobs that have waited longer than their queue timeout, removed.
  [[nodiscard]] JobList TakeExpired(absl::Time now);
  // Every queued or delayed job of `batch`, removed at `now`.
  [[nodiscard]] JobList TakeBatch(const Batch* batch, absl::Time now);
  // Every queued or delayed job, removed at `now` (shutdown).
  [[nodiscard]] JobList TakeAll(absl::Time now);

  // When the scheduler next has something to do without outside events (a
  // retry due, a host's politeness wait over, a queue timeout);
  // InfiniteFuture when nothing is pending, InfinitePast while refused jobs
  // wait in TakeRejected().
  absl::Time NextEvent() const;

  size_t queued() const { return queued_; }
  size_t delayed() const { return delayed_.size(); }
  int in_flight() const { return in_flight_; }
  // Jobs that have waited for a host's rate or least delay / for a host's
  // pause, each counted once per job (FetchJob::politeness_waits).
  uint64_t rate_limited_jobs() const { return rate_limited_jobs_; }
  uint64_t paused_jobs() const { return paused_jobs_; }

 private:
  struct Lane {
    const Batch* batch;
    std::deque<std::unique_ptr<FetchJob>> jobs;
  };
  // The lanes of one caller's batches at one host. Lists, so that a turn
  // passes by a splice (no move of a lane's jobs, no allocation).
  struct CallerLanes {
    std::string caller;
    // Round-robin: the front lane is served next. Never empty.
    std::list<Lane> lanes;
  };
  // A batch's own limits at one host.
  struct AskState {
    int active = 0;
    // Its rate allows no start before this time.
    absl::Time next_start = absl::InfinitePast();
  };
  struct Host {
    // The key of this entry in hosts_ (stable: hosts_ is node-based).
    const std::string* key = nullptr;
    // Attempts in flight (Next..Release).
    int active = 0;
    // Jobs in the lanes.
    size_t queued = 0;
    bool in_ready = false;
    // The limiter holds the host until this time (an entry in waiting_);
    // InfinitePast when it doesn't.
    absl::Time wait_until = absl::InfinitePast();
    // The limiter holds the host until an attempt at it ends.
    bool waits_release = false;
    // The wait is the host's pause: jobs queued meanwhile wait for it.
    bool paused = false;
    // Round-robin: the front caller is served next. Never holds an empty
    // CallerLanes.
    std::list<CallerLanes> callers;
    // The batches here that ask for stricter limits (Batch::politeness()):
    // an entry lives while the batch has an attempt in flight here or a
    // start still to space out.
    absl::flat_hash_map<const Batch*, AskState> asks;
  };
  // Where the job that would start next at a host is: callers[caller]
  // .lanes[lane].jobs.front(), its batch slots taken.
  struct Pick {
    std::list<CallerLanes>::iterator caller;
    std::list<Lane>::iterator lane;
  };

  void PushReady(Host& host);
  void PromoteDue(absl::Time now);
  // Hosts whose politeness wait is over go back to ready_.
  void PromoteWaiting(absl::Time now);
  // Hosts whose wait the limiter ended (HostLimiter::TakeWoken) too.
  void PromoteWoken();
  void AddToLane(std::unique_ptr<FetchJob> job, bool front);
  // The next job of `host` in round-robin order whose batch grants a slot
  // (taken) and whose batch's own limits allow a start at `now`, or
  // nullopt; changes no order.
  std::optional<Pick> FindStartable(Host& host, absl::Time now);
  // Whether the batch of `head` may start one more attempt at `host` at
  // `now` by its own limits; a rate wait is noted (next_ask_start_).
  bool AskAllows(Host& host, FetchJob& head, absl::Time now);
  // An attempt of `job` started / ended at `host`: its batch's own limits.
  static void AskStarted(Host& host, const FetchJob& job, absl::Time now);
  static void AskEnded(Host& host, const FetchJob& job, absl::Time now);
  // Removes the job at `pick` and passes the turns as a start does.
  std::unique_ptr<FetchJob> TakePicked(Host& host, Pick pick);
  // The limiter holds `host` until `until` (InfiniteFuture: an attempt's
  // end).
  void Wait(Host& host, absl::Time until, bool paused, absl::Time now);
  // The limiter refused every start at `host` (its breaker is open): jobs
  // whose queue timeout outlasts it wait, the others go to rejected_.
  void RejectQueued(Host& host, const politeness::Rejection& rejection,
                    absl::Time now);
  // Whether `job` (queued at job.queued_at) waits out `rejection` instead
  // of being refused: an open breaker, the job asked to wait
  // (FetchJob::wait_for_open_breaker), and its queue timeout lasts until
  // the breaker admits again.
  static bool WaitsForBreaker(const FetchJob& job,
                              const politeness::Rejection& rejection);
  // Marks `job` as having met a rate / pause wait, counting it once.
  void MarkRate(FetchJob& job);
  void MarkPaused(FetchJob& job);
  // Gives back the retry budget place of a job that leaves unstarted.
  void Dropped(FetchJob& job, absl::Time now);
  template <typename Pred>
  JobList TakeQueuedIf(Pred pred);
  // Takes the jobs of one host that `pred` selects.
  template <typename Pred>
  void TakeFromHostIf(Host& host, Pred pred, JobList& taken);
  void EraseIfIdle(const std::string& key);

  const Limits limits_;
  politeness::HostLimiter& limiter_;
  const int worker_;
  absl::node_hash_map<std::string, Host> hosts_;
  // Hosts that may have a startable job, served round-robin. A host listed
  // here (Host::in_ready) is not erased.
  std::deque<Host*> ready_;
  // Hosts the limiter holds until a time. Entries whose host is gone or
  // waits for another time are stale and skipped.
  std::multimap<absl::Time, std::string> waiting_;
  std::multimap<absl::Time, std::unique_ptr<FetchJob>> delayed_;
  std::vector<Rejected> rejected_;
  size_t queued_ = 0;
  int in_flight_ = 0;
  uint64_t rate_limited_jobs_ = 0;
  uint64_t paused_jobs_ = 0;
  // The earliest time a batch's own rate lets a held lane start (found by
  // the last full scan of Next()).
  absl::Time next_ask_start_ = absl::InfiniteFuture();
  // No queued job can expire before this time.
  absl::Time next_expiry_ = absl::InfiniteFuture();
  absl::Time last_expiry_scan_ = absl::InfinitePast();
};

}  // namespace fetchd::core

#endif  // FETCHD_SERVICE_CORE_HOST_SCHEDULER_H_
