// FakeLeaseStore: an in-memory LeaseStore with the same rules as the Redis
// scripts (redis_lease_store.cc), on an injected clock, for unit tests of the
// LeaseBroker. Several stores (replicas) share one FakeCluster; the cluster
// can be taken down (every call fails as a dead connection does) and
// restarted with its data lost (a new epoch).
//
// Thread-safety: FakeCluster's methods may be called from any thread.
#ifndef FETCHD_TESTS_CLUSTER_FAKE_LEASE_STORE_H_
#define FETCHD_TESTS_CLUSTER_FAKE_LEASE_STORE_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "service/cluster/lease_store.h"
#include "service/common/clock.h"

namespace fetchd::cluster {

class FakeCluster {
 public:
  // `clock` (a FakeClock, or the real one) must outlive the cluster.
  explicit FakeCluster(const Clock* clock) : clock_(clock) {}

  // Calls fail with Unavailable until Up(); a restart also drops the data
  // (a new epoch is made by the next heartbeat) and every connection.
  void Down() ABSL_LOCKS_EXCLUDED(mu_);
  void Up() ABSL_LOCKS_EXCLUDED(mu_);
  void Restart() ABSL_LOCKS_EXCLUDED(mu_);
  // An epoch whose learning period is over (a cluster running for long).
  void SetOldEpoch() ABSL_LOCKS_EXCLUDED(mu_);

  int Leases(const std::string& host) const ABSL_LOCKS_EXCLUDED(mu_);
  int LeasesOf(const std::string& host, const std::string& replica) const
      ABSL_LOCKS_EXCLUDED(mu_);
  int Members() const ABSL_LOCKS_EXCLUDED(mu_);
  absl::Time PausedUntil(const std::string& host) const
      ABSL_LOCKS_EXCLUDED(mu_);
  int calls() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  friend class FakeLeaseStore;
  struct Host {
    std::map<std::string, absl::Time> leases;
    std::map<std::string, absl::Time> wanters;
    int64_t tat = 0;
    // Given-back send times (us).
    std::multiset<int64_t> holes;
    absl::Time pause = absl::InfinitePast();
  };
  absl::Status Check(int generation) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t Micros(absl::Time t) const { return absl::ToUnixMicros(t); }

  const Clock* const clock_;
  mutable absl::Mutex mu_;
  bool down_ ABSL_GUARDED_BY(mu_) = false;
  // Bumped by Restart(): older connections are broken.
  int generation_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, Host> hosts_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, absl::Time> members_ ABSL_GUARDED_BY(mu_);
  std::string epoch_ ABSL_GUARDED_BY(mu_);
  absl::Time learn_until_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  int epochs_ ABSL_GUARDED_BY(mu_) = 0;
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
};

class FakeLeaseStore final : public LeaseStore {
 public:
  FakeLeaseStore(FakeCluster* cluster, std::string replica)
      : cluster_(cluster), replica_(std::move(replica)) {}

  absl::Status Connect() override;
  void Disconnect() override { generation_ = -1; }
  absl::StatusOr<Membership> Heartbeat(absl::Duration ttl,
                                       bool leaving) override;
  absl::StatusOr<std::vector<HostSyncReply>> Sync(
      absl::Span<const HostSyncRequest> requests, absl::Duration ttl,
      absl::Duration want_ttl) override;

  // What the last Sync asked (for tests of what the broker sends).
  std::vector<HostSyncRequest> last_requests() const { return last_; }

 private:
  FakeCluster* const cluster_;
  const std::string replica_;
  // The cluster generation connected to; -1: not connected.
  int generation_ = -1;
  std::vector<HostSyncRequest> last_;
};

}  // namespace fetchd::cluster

#endif  // FETCHD_TESTS_CLUSTER_FAKE_LEASE_STORE_H_
