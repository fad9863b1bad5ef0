#include "service/cluster/limiter_observer.h"

namespace fetchd::cluster {

const char* LimiterModeName(LimiterMode mode) {
  switch (mode) {
    case LimiterMode::kLocal:
      return "local";
    case LimiterMode::kRedis:
      return "redis";
    case LimiterMode::kDegraded:
      return "degraded";
    case LimiterMode::kLearning:
      return "learning";
  }
  return "local";
}

const char* RedisOperationName(RedisOperation op) {
  switch (op) {
    case RedisOperation::kConnect:
      return "connect";
    case RedisOperation::kHeartbeat:
      return "heartbeat";
    case RedisOperation::kSync:
      return "sync";
  }
  return "sync";
}

const char* RedisErrorKind(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kDeadlineExceeded:
      return "timeout";
    case absl::StatusCode::kUnavailable:
      return "connection";
    case absl::StatusCode::kInternal:
      return "protocol";
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kPermissionDenied:
      return "reply";
    default:
      return "other";
  }
}

}  // namespace fetchd::cluster
