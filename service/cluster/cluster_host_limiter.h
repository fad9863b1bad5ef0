// ClusterHostLimiter: a curl worker's HostLimiter with limiter mode REDIS.
// It keeps the replica's own politeness in a LocalHostLimiter (breaker,
// retry budget, adaptive limit, min_delay, the host-wide pause it sees
// itself, and a per-replica cap of the rule's max_concurrency) and asks the
// process's LeaseBroker for the cluster-wide part: a lease for every
// attempt, a send time at rate-limited hosts, and the pause any replica
// set. A pause this replica starts (429/503) is published to the others.
//
// Reserve asks the broker first (which can give back what it took), then
// the local limiter; a broker wait for Redis ends by a wakeup: the broker
// calls WakeHosts, the worker is woken and its scheduler takes the hosts
// back through TakeWoken().
//
// Thread-safety: as HostLimiter (one worker thread), except WakeHosts (the
// broker's thread) and TakeWoken's hand-over, guarded by mu_.
#ifndef FETCHD_SERVICE_CLUSTER_CLUSTER_HOST_LIMITER_H_
#define FETCHD_SERVICE_CLUSTER_CLUSTER_HOST_LIMITER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "service/cluster/lease_broker.h"
#include "service/core/politeness/local_host_limiter.h"

namespace fetchd::cluster {

class ClusterHostLimiter final : public core::politeness::HostLimiter,
                                 public HostWakeup {
 public:
  // `broker` must outlive the limiter; `options.rate_elsewhere` is set
  // here. `wake_worker` wakes the owning worker from any thread.
  ClusterHostLimiter(std::shared_ptr<const core::politeness::RuleSet> rules,
                     core::politeness::LocalHostLimiter::Options options,
                     LeaseBroker* broker, std::function<void()> wake_worker);

  const core::politeness::HostRule& Rule(
      absl::string_view host_key) const override;
  std::optional<core::politeness::Rejection> CheckQueue(
      absl::string_view host_key, size_t waiting,
      absl::Time now) const override;
  core::politeness::Admission Reserve(absl::string_view host_key,
                                      absl::Time now) override;
  bool Release(absl::string_view host_key,
               const core::politeness::Permit& permit,
               const core::politeness::AttemptResult& result,
               absl::Time now) override;
  absl::Status TryRetry(absl::string_view host_key, absl::Time now) override;
  void EndRetry(absl::string_view host_key, absl::Time now) override;
  absl::Time NextReady(absl::string_view host_key,
                       absl::Time now) const override;
  void NoteWaited(absl::string_view host_key,
                  core::politeness::WaitReason reason) override;
  std::vector<core::politeness::RuleStats> Stats(absl::Time now) const override;
  std::vector<std::string> TakeWoken() override ABSL_LOCKS_EXCLUDED(mu_);

  void WakeHosts(std::vector<std::string> host_keys) override
      ABSL_LOCKS_EXCLUDED(mu_);

 private:
  static core::politeness::LocalHostLimiter::Options RateElsewhere(
      core::politeness::LocalHostLimiter::Options options);

  core::politeness::LocalHostLimiter local_;
  LeaseBroker* const broker_;
  const std::function<void()> wake_worker_;

  // Lets TakeWoken skip the lock when nothing was woken.
  std::atomic<bool> any_woken_{false};
  absl::Mutex mu_;
  std::vector<std::string> woken_ ABSL_GUARDED_BY(mu_);
};

}  // namespace fetchd::cluster

#endif  // FETCHD_SERVICE_CLUSTER_CLUSTER_HOST_LIMITER_H_
