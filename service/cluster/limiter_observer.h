// LimiterObserver: what the cluster-wide limiter reports for metrics
// (metrics::FetchMetrics implements it; README.md, "Metrics").
//
// Thread-safety: the broker's thread makes the calls (OnLimiterMode also
// the server's, once at start); implementations must be safe to call from
// any thread.
#ifndef FETCHD_SERVICE_CLUSTER_LIMITER_OBSERVER_H_
#define FETCHD_SERVICE_CLUSTER_LIMITER_OBSERVER_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace fetchd::cluster {

// A replica's limiter mode (the `mode` label).
enum class LimiterMode {
  // ServerConfig.limiter.mode LOCAL: limits per replica.
  kLocal,
  // Limits from Redis leases.
  kRedis,
  // Redis unreachable: degraded shares (or on_redis_failure's policy).
  kDegraded,
  // After a Redis restart, one lease TTL of degraded shares while Redis
  // learns the leases still in use.
  kLearning,
};
inline constexpr int kLimiterModes = 4;

[[nodiscard]] const char* LimiterModeName(LimiterMode mode);

// Broker operations (the `operation` label).
enum class RedisOperation { kConnect, kHeartbeat, kSync };
inline constexpr int kRedisOperations = 3;
[[nodiscard]] const char* RedisOperationName(RedisOperation op);

// The label of a failed Redis call's status (RedisConnection's codes):
// "timeout", "connection", "protocol", "reply" (an error reply, AUTH
// refused), "other".
[[nodiscard]] const char* RedisErrorKind(const absl::Status& status);

class LimiterObserver {
 public:
  virtual ~LimiterObserver() = default;
  // The mode is now `mode` (also called once at start).
  virtual void OnLimiterMode(LimiterMode mode) = 0;
  // One round trip of `commands` Redis calls (EVALSHA or other) for `op`,
  // or its failure.
  virtual void OnRedisCall(RedisOperation op, int commands,
                           absl::Duration round_trip,
                           const absl::Status& status) = 0;
  // A round's lease bookkeeping: leases got, given back, and found expired
  // (any replica's) by the store; leases this replica holds now.
  virtual void OnLeases(int granted, int released, int reaped, int held) = 0;
  // Send times reserved, returned unused to the store, and dropped unused
  // (too late to use, or kept when the store could not take them back).
  virtual void OnTokens(int reserved, int returned, int dropped) = 0;
  // `n` starts admitted by the cluster limiter (the denominator of Redis
  // calls per request).
  virtual void OnLimiterStarts(int n) = 0;
};

}  // namespace fetchd::cluster

#endif  // FETCHD_SERVICE_CLUSTER_LIMITER_OBSERVER_H_
