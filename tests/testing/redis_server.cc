#include "tests/testing/redis_server.h"

#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "tests/testing/test_http_server.h"

extern char** environ;

namespace fetchd::testing {
namespace {

constexpr char kRedisServer[] = "/usr/bin/redis-server";

bool Accepts(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  const bool ok =
      connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

RedisServer::~RedisServer() {
  Kill();
  if (!dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
}

std::string RedisServer::address() const {
  if (tcp_) return absl::StrCat("127.0.0.1:", port_);
  return absl::StrCat("unix:", socket_);
}

absl::Status RedisServer::Start() {
  if (access(kRedisServer, X_OK) != 0) {
    return absl::FailedPreconditionError(
        "/usr/bin/redis-server missing: install the Debian package "
        "redis-server (scripts/install-deps.sh)");
  }
  if (pid_ > 0) return absl::FailedPreconditionError("already running");
  if (dir_.empty()) {
    std::string dir_template =
        (std::filesystem::temp_directory_path() / "fetchd_redis.XXXXXX")
            .string();
    if (mkdtemp(dir_template.data()) == nullptr) {
      return absl::InternalError("mkdtemp failed");
    }
    dir_ = dir_template;
    socket_ = dir_ + "/redis.sock";
    if (tcp_) port_ = UnusedLoopbackPort();
  }
  std::error_code ignored;
  std::filesystem::remove(socket_, ignored);
  std::vector<std::string> args = {kRedisServer,
                                   "--port",
                                   absl::StrCat(port_),
                                   "--bind",
                                   "127.0.0.1",
                                   "--unixsocket",
                                   socket_,
                                   "--unixsocketperm",
                                   "700",
                                   "--save",
                                   "",
                                   "--appendonly",
                                   "no",
                                   "--dir",
                                   dir_,
                                   "--logfile",
                                   dir_ + "/redis.log",
                                   "--daemonize",
                                   "no"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (posix_spawn(&pid_, kRedisServer, nullptr, nullptr, argv.data(),
                  environ) != 0) {
    pid_ = -1;
    return absl::InternalError("posix_spawn redis-server failed");
  }
  // Another process: poll, boundedly, until it accepts.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!Accepts(socket_)) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return absl::InternalError(absl::StrCat("redis-server exited at start: ",
                                              ReadFile(dir_ + "/redis.log")));
    }
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("redis-server did not accept connections: ",
                       ReadFile(dir_ + "/redis.log")));
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return absl::OkStatus();
}

void RedisServer::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

}  // namespace fetchd::testing
