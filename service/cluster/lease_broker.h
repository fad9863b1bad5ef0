// LeaseBroker: one per replica with limiter mode REDIS. It keeps, per host
// key, a local pool of what the LeaseStore granted this replica -
// concurrency leases and reserved send times - and hands them to the curl
// workers' ClusterHostLimiters without a store call; its own thread syncs
// the pools with the store in pipelined rounds, off every request's path.
//
// Per host key, a worker's TryTake (under the broker's lock):
//   - paused (host-wide, by any replica): wait until the pause ends;
//   - mode REDIS: the pool must have been synced within 2 sync_intervals
//     (so a pause set elsewhere is seen); a slot needs a held lease not in
//     use, within the fair share (`cap`: limit / (1 + other replicas short
//     of leases)), and a rate-limited host a send time that has come (one
//     older than an emission interval is dropped: using it late could
//     break the window bound). Missing any: the sync is asked for now and
//     the worker waits; the broker wakes it (HostWakeup) when the round is
//     back.
//   - modes DEGRADED and LEARNING: on_failure says: floor(limit / N)
//     attempts and a local GCRA at rate / N (burst / N, at least 1), with N
//     = max(live replicas last seen, expected_replicas); or the full limits
//     (FAIL_OPEN); or nothing (FAIL_CLOSED).
//
// A round (RunOnce) at `now`: connect if due (jittered backoff 100 ms..2 s
// after a failure); heartbeat every lease_ttl / 3 (live count, epoch); then
// one pipelined Sync of every pool that is due: asked for by a worker, a
// pause to publish, active (a start or attempt within sync_interval) and
// not synced for sync_interval, or idle for idle_release with leases or
// send times to give back. A sync renews every lease held (adding back, as
// in use, attempts started without one in DEGRADED or LEARNING mode),
// releases idle leases and those over the fair share, asks for
// ceil(limit / N) more leases when workers were short recently, for
// ceil(rate * rate_horizon / N) send times when fewer than half a horizon
// are left (N: max(live replicas, expected_replicas), so that the first
// replica to ask does not take what the others will need), and gives back the
// send times nobody here asked for within two emission intervals (the store
// hands them to the next replica that asks, before new ones).
//
// Modes: DEGRADED at start and after any store error (the connection is
// dropped and retried); after a heartbeat, REDIS, or LEARNING while the
// store's epoch is younger than one lease TTL (the store restarted: leases
// taken before it are unknown to it until they must have expired). A
// heartbeat that shows a new epoch also starts LEARNING.
//
// Thread-safety: TryTake, Untake, Release, PublishPause and mode() from any
// thread (the curl workers); RunOnce from one thread at a time (Start()'s,
// or a test's).
#ifndef FETCHD_SERVICE_CLUSTER_LEASE_BROKER_H_
#define FETCHD_SERVICE_CLUSTER_LEASE_BROKER_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/random/random.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/cluster/lease_store.h"
#include "service/cluster/limiter_observer.h"
#include "service/cluster/limiter_options.h"
#include "service/common/clock.h"
#include "service/core/politeness/host_limiter.h"

namespace fetchd::cluster {

// The cluster-wide limits of one host key (its rule's).
struct HostLimits {
  int max_concurrency = 0;
  double rate = 0;
  int burst = 1;
};

// Told, from the broker's thread, which hosts may start again without an
// attempt having ended (a round brought what they waited for, or the mode
// changed).
class HostWakeup {
 public:
  virtual ~HostWakeup() = default;
  virtual void WakeHosts(std::vector<std::string> host_keys) = 0;
};

class LeaseBroker {
 public:
  // A worker's answer: go (a slot, and a send time if rated, are taken), or
  // wait for `reason` until `until` (InfiniteFuture: until a wakeup or an
  // attempt's end).
  struct Decision {
    bool go = false;
    core::politeness::WaitReason reason =
        core::politeness::WaitReason::kConcurrency;
    absl::Time until = absl::InfiniteFuture();
  };

  // `store`, `clock` and `observer` (may be null) must outlive the broker.
  LeaseBroker(const LimiterOptions& options, LeaseStore* store,
              const Clock* clock, LimiterObserver* observer);
  // Stop()s.
  ~LeaseBroker();
  LeaseBroker(const LeaseBroker&) = delete;
  LeaseBroker& operator=(const LeaseBroker&) = delete;

  // Starts the thread that runs rounds.
  void Start();
  // Ends the thread; then, if connected, gives back every lease and unused
  // send time and leaves the membership (one round, bounded by the command
  // timeout). Idempotent.
  void Stop();

  Decision TryTake(absl::string_view host_key, const HostLimits& limits,
                   HostWakeup* owner, absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  // Gives back what the last go of TryTake at `host_key` took, when the
  // attempt does not start after all.
  void Untake(absl::string_view host_key) ABSL_LOCKS_EXCLUDED(mu_);
  // An attempt at `host_key` ended.
  void Release(absl::string_view host_key, absl::Time now)
      ABSL_LOCKS_EXCLUDED(mu_);
  // This replica paused `host_key` until `until`: every replica holds it.
  void PublishPause(absl::string_view host_key, absl::Time until,
                    absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);

  LimiterMode mode() const ABSL_LOCKS_EXCLUDED(mu_);
  // Leases held now, all hosts (tests, metrics).
  int held_leases() const ABSL_LOCKS_EXCLUDED(mu_);
  // Host keys with a pool.
  size_t pools() const ABSL_LOCKS_EXCLUDED(mu_);

  // One round at the clock's now; returns when the next one is due.
  absl::Time RunOnce() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Pool {
    HostWakeup* owner = nullptr;
    HostLimits limits;
    // Leases granted by the store, in use or idle.
    std::vector<uint64_t> held;
    // Leases to give back at the next sync (kept idle when the store
    // failed).
    std::vector<uint64_t> release_pending;
    // Attempts running, with a lease or (DEGRADED, LEARNING) without.
    int in_use = 0;
    // Fair share of leases; the limit when nobody else is short.
    int cap = 0;
    // Send times (local clock), ascending.
    std::deque<absl::Time> tokens;
    // Local GCRA of the degraded share.
    absl::Time degraded_tat = absl::InfinitePast();
    // What the last go took, for Untake.
    bool took_token = false;
    absl::Time taken_token;
    absl::Time undo_degraded_tat = absl::InfinitePast();
    absl::Time paused_until = absl::InfinitePast();
    // A pause of ours to publish (InfinitePast: none).
    absl::Time publish_until = absl::InfinitePast();
    // The pool's store-backed state may be used until then.
    absl::Time fresh_until = absl::InfinitePast();
    absl::Time last_sync = absl::InfinitePast();
    absl::Time last_activity = absl::InfinitePast();
    // A worker was short of leases then.
    absl::Time short_at = absl::InfinitePast();
    // The store granted nothing asked for: ask again no sooner than this
    // (the next regular sync).
    absl::Time no_grant_until = absl::InfinitePast();
    absl::Time no_token_until = absl::InfinitePast();
    // Leases the other replicas held at the last sync.
    int others_held = 0;
    // A worker asked for a sync / waits for the next one.
    bool sync_now = false;
    bool waiting = false;
  };
  using PoolMap = absl::flat_hash_map<std::string, Pool>;

  // N for the degraded shares.
  int Replicas() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Decision TakeFromStore(Pool& pool, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Decision TakeLocal(Pool& pool, int share, double rate, int burst,
                     absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void AskSync(Pool& pool) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops the pools that hold nothing and have been unused for a while.
  void EraseUnused(absl::Time now) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool Woken() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // When `pool` is next due for a sync (InfinitePast: now).
  absl::Time DueAt(const Pool& pool) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops the send times more than an interval late (using one could break
  // the window bound); returns how many.
  static int DropLate(Pool& pool, absl::Time now);
  absl::Time NextDue(absl::Time now) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  HostSyncRequest BuildRequest(const std::string& host_key, Pool& pool,
                               bool leaving, absl::Time now, int& released,
                               int& dropped) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sets the mode; a change wakes every pool's owner (into `wake`).
  // Wakes every pool's owner (into `wake`).
  void WakeAll(std::vector<std::pair<HostWakeup*, std::string>>& wake)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetMode(LimiterMode mode,
               std::vector<std::pair<HostWakeup*, std::string>>& wake)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Fail(const absl::Status& status, absl::Time now)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Heartbeat and syncs; false after a store error.
  bool Heartbeat(absl::Time now) ABSL_LOCKS_EXCLUDED(mu_);
  bool SyncDue(absl::Time now, bool leaving) ABSL_LOCKS_EXCLUDED(mu_);
  static void Wake(std::vector<std::pair<HostWakeup*, std::string>> wake);
  // Maps the store's clock to ours: from the round trip of least delay
  // seen lately, the store's `now` is taken to be at its midpoint (an
  // error of at most half that round trip).
  void NoteStoreTime(int64_t store_now, absl::Time sent, absl::Time received);
  absl::Time LocalTime(int64_t store_time) const;
  int64_t StoreTime(absl::Time local) const;
  void Run();

  const LimiterOptions options_;
  LeaseStore* const store_;
  const Clock* const clock_;
  LimiterObserver* const observer_;

  // Only the round's thread.
  bool connected_ = false;
  absl::Time next_connect_ = absl::InfinitePast();
  absl::Duration backoff_ = absl::ZeroDuration();
  absl::Time next_heartbeat_ = absl::InfinitePast();
  std::string epoch_;
  absl::BitGen rng_;
  // The clock mapping (NoteStoreTime); read under mu_ by the same thread.
  int64_t clock_offset_us_ = 0;
  absl::Duration clock_rtt_ = absl::InfiniteDuration();
  absl::Time clock_at_ = absl::InfinitePast();

  mutable absl::Mutex mu_;
  PoolMap pools_ ABSL_GUARDED_BY(mu_);
  LimiterMode mode_ ABSL_GUARDED_BY(mu_) = LimiterMode::kDegraded;
  absl::Time learning_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Time degraded_since_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  // The first attempt to reach the store has ended (either way).
  bool first_attempt_done_ ABSL_GUARDED_BY(mu_) = false;
  int live_ ABSL_GUARDED_BY(mu_) = 1;
  uint64_t next_seq_ ABSL_GUARDED_BY(mu_) = 1;
  int starts_ ABSL_GUARDED_BY(mu_) = 0;
  int dropped_tokens_ ABSL_GUARDED_BY(mu_) = 0;
  // Set by workers that need a round now; the thread waits on it.
  bool kick_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;
};

}  // namespace fetchd::cluster

#endif  // FETCHD_SERVICE_CLUSTER_LEASE_BROKER_H_
