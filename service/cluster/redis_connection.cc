#include "service/cluster/redis_connection.h"

#include <hiredis/hiredis.h>
#include <signal.h>
#include <sys/time.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"

namespace fetchd::cluster {
namespace {

RedisReply Convert(const redisReply& reply) {
  RedisReply out;
  switch (reply.type) {
    case REDIS_REPLY_INTEGER:
      out.type = RedisReply::Type::kInteger;
      out.integer = reply.integer;
      break;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
      out.type = reply.type == REDIS_REPLY_STRING   ? RedisReply::Type::kString
                 : reply.type == REDIS_REPLY_STATUS ? RedisReply::Type::kStatus
                                                    : RedisReply::Type::kError;
      out.str.assign(reply.str, reply.len);
      break;
    case REDIS_REPLY_ARRAY:
      out.type = RedisReply::Type::kArray;
      out.elements.reserve(reply.elements);
      for (size_t i = 0; i < reply.elements; ++i) {
        out.elements.push_back(Convert(*reply.element[i]));
      }
      break;
    default:
      out.type = RedisReply::Type::kNil;
      break;
  }
  return out;
}

struct ReplyDeleter {
  void operator()(void* reply) const { freeReplyObject(reply); }
};

}  // namespace

void RedisConnection::ContextDeleter::operator()(redisContext* context) const {
  redisFree(context);
}

RedisConnection::RedisConnection(RedisAddress address, std::string password,
                                 absl::Duration connect_timeout,
                                 absl::Duration command_timeout)
    : address_(std::move(address)),
      password_(std::move(password)),
      connect_timeout_(connect_timeout),
      command_timeout_(command_timeout) {
  // hiredis writes with write(2): a write to a connection the server has
  // closed would raise SIGPIPE and end the process. fetchd never relies on
  // SIGPIPE (gRPC and libcurl send with MSG_NOSIGNAL), so it is ignored
  // process-wide, once.
  static const bool ignored = [] {
    signal(SIGPIPE, SIG_IGN);
    return true;
  }();
  (void)ignored;
}

RedisConnection::~RedisConnection() = default;

std::string RedisConnection::Describe() const {
  if (!address_.unix_path.empty())
    return absl::StrCat("unix:", address_.unix_path);
  return absl::StrCat(address_.host, ":", address_.port);
}

void RedisConnection::Close() { context_.reset(); }

absl::Status RedisConnection::Fail(absl::string_view during) {
  std::string what =
      context_ != nullptr ? std::string(context_->errstr) : "not connected";
  const int err = context_ != nullptr ? context_->err : REDIS_ERR_EOF;
  // hiredis sets errno for I/O errors; a timed-out read is EAGAIN.
  const bool timed_out =
      err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK ||
                              errno == ETIMEDOUT || errno == EINPROGRESS);
  Close();
  const std::string message =
      absl::StrCat("redis ", Describe(), ": ", during, ": ", what);
  if (timed_out) return absl::DeadlineExceededError(message);
  if (err == REDIS_ERR_IO || err == REDIS_ERR_EOF) {
    return absl::UnavailableError(message);
  }
  return absl::InternalError(message);
}

absl::Status RedisConnection::Connect() {
  Close();
  const timeval tv = ToTimeval(connect_timeout_);
  redisContext* raw =
      address_.unix_path.empty()
          ? redisConnectWithTimeout(address_.host.c_str(), address_.port, tv)
          : redisConnectUnixWithTimeout(address_.unix_path.c_str(), tv);
  if (raw == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("redis ", Describe(), ": cannot allocate a context"));
  }
  context_.reset(raw);
  if (context_->err != 0) return Fail("connect");
  if (redisSetTimeout(context_.get(), ToTimeval(command_timeout_)) !=
      REDIS_OK) {
    return Fail("set timeout");
  }
  if (address_.unix_path.empty()) (void)redisEnableKeepAlive(context_.get());
  if (!password_.empty()) {
    absl::StatusOr<RedisReply> auth = Command({"AUTH", password_});
    if (!auth.ok()) return auth.status();
    if (auth->is_error()) {
      Close();
      return absl::PermissionDeniedError(
          absl::StrCat("redis ", Describe(), ": AUTH refused: ", auth->str));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<RedisReply>> RedisConnection::Pipeline(
    absl::Span<const RedisCommand> commands) {
  if (context_ == nullptr) return Fail("send");
  std::vector<const char*> argv;
  std::vector<size_t> lengths;
  for (const RedisCommand& command : commands) {
    argv.clear();
    lengths.clear();
    for (const std::string& arg : command) {
      argv.push_back(arg.data());
      lengths.push_back(arg.size());
    }
    if (redisAppendCommandArgv(context_.get(), static_cast<int>(argv.size()),
                               argv.data(), lengths.data()) != REDIS_OK) {
      return Fail("send");
    }
  }
  std::vector<RedisReply> replies;
  replies.reserve(commands.size());
  for (size_t i = 0; i < commands.size(); ++i) {
    void* raw = nullptr;
    errno = 0;
    if (redisGetReply(context_.get(), &raw) != REDIS_OK || raw == nullptr) {
      return Fail("read reply");
    }
    std::unique_ptr<void, ReplyDeleter> reply(raw);
    replies.push_back(Convert(*static_cast<redisReply*>(raw)));
  }
  return replies;
}

absl::StatusOr<RedisReply> RedisConnection::Command(
    const RedisCommand& command) {
  absl::StatusOr<std::vector<RedisReply>> replies =
      Pipeline(absl::MakeConstSpan(&command, 1));
  if (!replies.ok()) return replies.status();
  return std::move(replies->front());
}

}  // namespace fetchd::cluster
