// RedisServer: a private redis-server (Debian's /usr/bin/redis-server) for
// tests of the cluster limiter: its own directory, no persistence (--save
// '' --appendonly no), listening on a unix socket in that directory and,
// if asked, on a free 127.0.0.1 port. Kill() and Start() again restart it
// on the same socket and port with an empty data set (as a real restart
// without persistence does).
#ifndef FETCHD_TESTS_TESTING_REDIS_SERVER_H_
#define FETCHD_TESTS_TESTING_REDIS_SERVER_H_

#include <sys/types.h>

#include <string>

#include "absl/status/status.h"

namespace fetchd::testing {

class RedisServer {
 public:
  // `tcp`: also listen on 127.0.0.1:port().
  explicit RedisServer(bool tcp = false) : tcp_(tcp) {}
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // Starts redis-server and waits (boundedly) until the socket accepts
  // connections. Errors name what failed, with the server's log.
  absl::Status Start();
  // SIGKILL, reaped.
  void Kill();
  bool running() const { return pid_ > 0; }

  const std::string& socket_path() const { return socket_; }
  int port() const { return port_; }
  // limiter.redis.address: "unix:PATH", or "127.0.0.1:PORT" with tcp.
  std::string address() const;

 private:
  const bool tcp_;
  std::string dir_;
  std::string socket_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace fetchd::testing

#endif  // FETCHD_TESTS_TESTING_REDIS_SERVER_H_
