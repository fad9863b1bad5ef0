// RedisConnection: one synchronous hiredis connection with a connect
// timeout and a per-command timeout, and pipelined commands (every command
// of a call is written at once, then every reply read). hiredis 0.14 is
// Debian 12's; its sync API is enough here because one thread (the
// LeaseBroker's) owns the connection and no curl worker ever waits on it.
//
// Errors, as absl::Status codes (RedisErrorKind names them for metrics):
//   DeadlineExceeded  a read or write took longer than the command timeout
//   Unavailable       not connected, refused, reset, closed by the server
//   Internal          a protocol error or anything else hiredis reports
// After any of these the connection is closed; Connect() again. An error
// *reply* (e.g. NOSCRIPT) is not an error of the call: it comes back as a
// RedisReply of type kError.
//
// Thread-safety: none; one thread uses an instance.
#ifndef FETCHD_SERVICE_CLUSTER_REDIS_CONNECTION_H_
#define FETCHD_SERVICE_CLUSTER_REDIS_CONNECTION_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "service/cluster/limiter_options.h"

struct redisContext;

namespace fetchd::cluster {

// A reply, copied out of hiredis.
struct RedisReply {
  enum class Type { kNil, kInteger, kString, kStatus, kError, kArray };
  Type type = Type::kNil;
  int64_t integer = 0;
  // kString, kStatus, kError.
  std::string str;
  std::vector<RedisReply> elements;

  bool is_error() const { return type == Type::kError; }
};

// One command's arguments (the command name first).
using RedisCommand = std::vector<std::string>;

class RedisConnection {
 public:
  RedisConnection(RedisAddress address, std::string password,
                  absl::Duration connect_timeout,
                  absl::Duration command_timeout);
  ~RedisConnection();
  RedisConnection(const RedisConnection&) = delete;
  RedisConnection& operator=(const RedisConnection&) = delete;

  // Connects (closing any connection first), sets the command timeout and
  // TCP keepalive, and sends AUTH when there is a password; an AUTH error
  // reply is PermissionDenied.
  absl::Status Connect();
  void Close();
  bool connected() const { return context_ != nullptr; }

  // Sends every command, then reads one reply per command, in order.
  absl::StatusOr<std::vector<RedisReply>> Pipeline(
      absl::Span<const RedisCommand> commands);
  // One command.
  absl::StatusOr<RedisReply> Command(const RedisCommand& command);

  // A description for logs ("127.0.0.1:6379" or "unix:/path").
  std::string Describe() const;

 private:
  struct ContextDeleter {
    void operator()(redisContext* context) const;
  };
  // The status of the connection's last error; closes it.
  absl::Status Fail(absl::string_view during);

  const RedisAddress address_;
  const std::string password_;
  const absl::Duration connect_timeout_;
  const absl::Duration command_timeout_;
  std::unique_ptr<redisContext, ContextDeleter> context_;
};

}  // namespace fetchd::cluster

#endif  // FETCHD_SERVICE_CLUSTER_REDIS_CONNECTION_H_
