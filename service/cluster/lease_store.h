// LeaseStore: the cluster-wide state the LeaseBroker keeps in common with
// the other replicas (RedisLeaseStore; tests use an in-memory one). Every
// time is the store's own: the store reads its clock inside each call
// (Redis TIME in the scripts) and answers in durations from that moment,
// so no replica's clock is ever compared with another's.
//
// Per host key (scheme://host:port):
//   leases   the concurrency slots taken, each "replica:seq" with an
//            expiry; a sync reaps expired ones, renews the ones the
//            replica holds (adding back any that expired: they are in use),
//            drops the ones it releases, then grants up to `want` new ones
//            within `limit`
//   wanters  replicas that asked for more than they got, recently: the
//            others then keep to a fair share
//   rate     GCRA over send times: a sync reserves up to `want_tokens` send
//            times no later than `horizon` from now - first from the
//            "holes" (send times other replicas gave back unused, not yet
//            more than an interval past), then new ones - after adding the
//            ones it gives back to the holes; the schedule, and so the
//            rate and burst, stay those of one GCRA
//   pause    a "not before" time that only moves forward
// Membership: each replica's heartbeat gives the live replica count and the
// store's epoch, which is new after the store lost its data (a restart).
//
// Thread-safety: none; the broker's thread makes every call. Calls block
// for at most the store's command timeout.
#ifndef FETCHD_SERVICE_CLUSTER_LEASE_STORE_H_
#define FETCHD_SERVICE_CLUSTER_LEASE_STORE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"

namespace fetchd::cluster {

struct HostSyncRequest {
  std::string host_key;
  // Cluster-wide max_concurrency; 0: no concurrency leases at this host.
  int limit = 0;
  // Leases this replica keeps (renewed, or added back if lost).
  std::vector<uint64_t> hold;
  // Leases it gives back.
  std::vector<uint64_t> release;
  // New leases asked for, numbered first_seq, first_seq + 1, ...
  int want = 0;
  uint64_t first_seq = 0;
  // Rate (interval zero: none): emission interval and tolerance (burst - 1
  // intervals) of the cluster-wide GCRA.
  absl::Duration interval = absl::ZeroDuration();
  absl::Duration tolerance = absl::ZeroDuration();
  int want_tokens = 0;
  absl::Duration horizon = absl::ZeroDuration();
  // Unused send times given back, in the store's clock (microseconds).
  std::vector<int64_t> returned;
  // Pause the host this long from now (zero: no change).
  absl::Duration pause = absl::ZeroDuration();
};

struct HostSyncReply {
  // The store's clock when it ran the call, in microseconds (its own
  // epoch); `tokens` and `paused_for` count from it.
  int64_t store_now = 0;
  // New leases: first_seq .. first_seq + granted - 1.
  int granted = 0;
  // Expired leases (any replica's) removed by this call.
  int reaped = 0;
  // Leases at the host after the call, all replicas.
  int held_cluster = 0;
  // Other replicas short of leases here.
  int wanters = 0;
  // Reserved send times, from the store's now (a taken-back one may be
  // slightly past), ascending.
  std::vector<absl::Duration> tokens;
  // Given-back send times the store kept (those not already too late).
  int returned = 0;
  // How long the host stays paused from the store's now.
  absl::Duration paused_for = absl::ZeroDuration();
};

struct Membership {
  // Replicas with a live heartbeat, this one included.
  int live = 0;
  std::string epoch;
  // The rest of the learning period that follows a new epoch.
  absl::Duration learning_left = absl::ZeroDuration();
};

class LeaseStore {
 public:
  virtual ~LeaseStore() = default;
  // (Re)connects and prepares what calls need (loads the scripts).
  virtual absl::Status Connect() = 0;
  virtual void Disconnect() = 0;
  // This replica is alive for `ttl` more; makes the epoch if there is none
  // (its learning period: `ttl`). `leaving`: removes this replica instead.
  virtual absl::StatusOr<Membership> Heartbeat(absl::Duration ttl,
                                               bool leaving) = 0;
  // One reply per request, in order (one round trip). Leases live `ttl`.
  virtual absl::StatusOr<std::vector<HostSyncReply>> Sync(
      absl::Span<const HostSyncRequest> requests, absl::Duration ttl,
      absl::Duration want_ttl) = 0;
};

}  // namespace fetchd::cluster

#endif  // FETCHD_SERVICE_CLUSTER_LEASE_STORE_H_
