// HostScheduler: decides which queued job starts next on one curl worker.
//
// - Per-host limit: at most `max_per_host` attempts in flight per host key
//   (scheme://host:port). Jobs over the limit wait here, not inside curl, so
//   their wait is measured as queue wait and never charged to the transfer
//   timeout.
// - Global limit: at most `max_in_flight` attempts in flight on this worker.
// - Fairness: each host keeps one FIFO lane per batch, grouped by the
//   batch's caller (Batch::caller()). A host serves its callers round-robin
//   and, within a caller, that caller's lanes round-robin: with callers A
//   (two batches) and B (one) waiting for one host, starts go A1 B A2 B ...
//   so B gets half the host however many batches A opens, and a small batch
//   started after a huge one of the same caller is interleaved with it.
//   Hosts are served round-robin too; the global max_in_flight is not
//   shared per caller (a caller's share of it follows from the hosts it
//   uses; per-caller admission limits bound what it can queue).
// - Flow control: a job starts only when its batch grants a slot
//   (Batch::TryAcquire); a batch that can't is skipped, not waited on.
// - Retries wait in a timer list until their backoff ends, then join the
//   front of their lane.
// - Queue timeout: a job that waited longer than its queue_timeout is taken
//   out by TakeExpired().
//
// Time is passed in by the caller: the scheduler never reads a clock.
// Thread-safety: none; one worker thread owns each instance.
#ifndef FETCHD_SERVICE_CORE_HOST_SCHEDULER_H_
#define FETCHD_SERVICE_CORE_HOST_SCHEDULER_H_

#include <cstddef>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/time/time.h"
#include "service/core/fetch_job.h"

namespace fetchd::core {

class HostScheduler {
 public:
  struct Limits {
    int max_per_host = 16;
    int max_in_flight = 1024;
  };
  using JobList = std::vector<std::unique_ptr<FetchJob>>;

  // `worker` identifies the owner to Batch::TryAcquire, so that a batch that
  // frees a slot wakes only the workers waiting for it.
  explicit HostScheduler(const Limits& limits, int worker = 0)
      : limits_(limits), worker_(worker) {}

  // Queues a new job; its queue wait starts at `now`.
  void Enqueue(std::unique_ptr<FetchJob> job, absl::Time now);
  // Queues `job` again once `due` has come (a retry after backoff).
  void EnqueueAt(std::unique_ptr<FetchJob> job, absl::Time due);

  // The next job that may start at `now`, or null. The job's host slot and
  // its batch's slots are taken; its queue wait is added to job->queue_wait.
  // Call Release() when the attempt ends.
  [[nodiscard]] std::unique_ptr<FetchJob> Next(absl::Time now);
  // The attempt of a job of `host_key` ended. A key with no attempt in
  // flight is a caller bug: it asserts in debug builds; otherwise nothing
  // changes and false comes back for the caller to log.
  [[nodiscard]] bool Release(const std::string& host_key);

  // Jobs that have waited longer than their queue timeout, removed.
  [[nodiscard]] JobList TakeExpired(absl::Time now);
  // Every queued or delayed job of `batch`, removed.
  [[nodiscard]] JobList TakeBatch(const Batch* batch);
  // Every queued or delayed job, removed (shutdown).
  [[nodiscard]] JobList TakeAll();

  // When the scheduler next has something to do without outside events (a
  // retry due, a queue timeout); InfiniteFuture when nothing is pending.
  absl::Time NextEvent() const;

  size_t queued() const { return queued_; }
  size_t delayed() const { return delayed_.size(); }
  int in_flight() const { return in_flight_; }

 private:
  struct Lane {
    const Batch* batch;
    std::deque<std::unique_ptr<FetchJob>> jobs;
  };
  // The lanes of one caller's batches at one host.
  struct CallerLanes {
    std::string caller;
    // Round-robin: the front lane is served next. Never empty.
    std::deque<Lane> lanes;
  };
  struct Host {
    int active = 0;
    bool in_ready = false;
    // Round-robin: the front caller is served next. Never holds an empty
    // CallerLanes.
    std::deque<CallerLanes> callers;
  };

  void PushReady(const std::string& key, Host& host);
  void PromoteDue(absl::Time now);
  void AddToLane(std::unique_ptr<FetchJob> job, bool front);
  // Takes a job from `host` whose batch grants a slot, or null.
  std::unique_ptr<FetchJob> TakeFromHost(Host& host);
  // The same among one caller's lanes.
  std::unique_ptr<FetchJob> TakeFromLanes(std::deque<Lane>& lanes);
  template <typename Pred>
  JobList TakeQueuedIf(Pred pred);
  void EraseIfIdle(const std::string& key);

  const Limits limits_;
  const int worker_;
  absl::flat_hash_map<std::string, Host> hosts_;
  // Hosts that may have a startable job, served round-robin.
  std::deque<std::string> ready_;
  std::multimap<absl::Time, std::unique_ptr<FetchJob>> delayed_;
  size_t queued_ = 0;
  int in_flight_ = 0;
  // No queued job can expire before this time.
  absl::Time next_expiry_ = absl::InfiniteFuture();
  absl::Time last_expiry_scan_ = absl::InfinitePast();
};

}  // namespace fetchd::core

#endif  // FETCHD_SERVICE_CORE_HOST_SCHEDULER_H_
