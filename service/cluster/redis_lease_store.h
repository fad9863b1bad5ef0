// RedisLeaseStore: the LeaseStore kept in Redis 7 by two Lua scripts,
// loaded once per connection (SCRIPT LOAD) and run by EVALSHA (loaded again
// on NOSCRIPT). Each script reads Redis TIME itself.
//
// Keys (key_prefix "fetchd:" by default), each host's in one hash tag so
// that a script's keys share a Redis Cluster slot:
//   fetchd:{<host key>}:leases   sorted set, member replica:seq, score
//                                expiry (us of Redis time)
//   fetchd:{<host key>}:wanters  sorted set, member replica, score expiry
//   fetchd:{<host key>}:tat      GCRA theoretical arrival time (us)
//   fetchd:{<host key>}:holes    send times given back unused (sorted set,
//                                score: the time in us)
//   fetchd:{<host key>}:pause    not-before time (us)
//   fetchd:{replicas}:members    sorted set, member replica, score expiry
//   fetchd:{replicas}:epoch      hash: id, learn_until (us)
// Every key expires by itself once unused (PEXPIRE/PX): nothing to clean.
//
// Thread-safety: none (LeaseStore).
#ifndef FETCHD_SERVICE_CLUSTER_REDIS_LEASE_STORE_H_
#define FETCHD_SERVICE_CLUSTER_REDIS_LEASE_STORE_H_

#include <string>
#include <vector>

#include "service/cluster/lease_store.h"
#include "service/cluster/limiter_options.h"
#include "service/cluster/redis_connection.h"

namespace fetchd::cluster {

class RedisLeaseStore final : public LeaseStore {
 public:
  explicit RedisLeaseStore(const LimiterOptions& options);

  absl::Status Connect() override;
  void Disconnect() override;
  absl::StatusOr<Membership> Heartbeat(absl::Duration ttl,
                                       bool leaving) override;
  absl::StatusOr<std::vector<HostSyncReply>> Sync(
      absl::Span<const HostSyncRequest> requests, absl::Duration ttl,
      absl::Duration want_ttl) override;

  // The key of `host_key`'s `what` ("leases", "tat", ...), for tests.
  std::string HostKey(absl::string_view host_key, absl::string_view what) const;

 private:
  struct Script {
    const char* source;
    std::string sha;
  };
  // Runs `commands` (EVALSHA of `script`), loading the script again and
  // retrying the lot once when a reply says NOSCRIPT.
  absl::StatusOr<std::vector<RedisReply>> Run(
      Script& script, std::vector<RedisCommand>& commands);
  absl::Status Load(Script& script);

  const LimiterOptions options_;
  RedisConnection connection_;
  Script sync_;
  Script heartbeat_;
  uint64_t epoch_candidates_ = 0;
};

}  // namespace fetchd::cluster

#endif  // FETCHD_SERVICE_CLUSTER_REDIS_LEASE_STORE_H_
