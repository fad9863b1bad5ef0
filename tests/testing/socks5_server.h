// Socks5Server: a minimal SOCKS5 proxy (RFC 1928: CONNECT only; RFC 1929
// username/password when credentials are set) on 127.0.0.1, for testing
// fetchd's SOCKS proxy support. Target names are never resolved through
// DNS: only numeric addresses (IPv4, IPv6, or a domain field holding one)
// are connected to, so a test can't reach beyond loopback by accident.
#ifndef FETCHD_TESTS_TESTING_SOCKS5_SERVER_H_
#define FETCHD_TESTS_TESTING_SOCKS5_SERVER_H_

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "tests/testing/loopback_listener.h"

namespace fetchd::testing {

class Socks5Server {
 public:
  // Empty `username`: no authentication.
  Socks5Server(std::string username = "", std::string password = "")
      : username_(std::move(username)),
        password_(std::move(password)),
        listener_([this](int fd) { Serve(fd); }) {}
  ~Socks5Server() { Stop(); }
  Socks5Server(const Socks5Server&) = delete;
  Socks5Server& operator=(const Socks5Server&) = delete;

  absl::Status Start() { return listener_.Start(); }
  // Closes the listener and every relayed connection; joins the threads.
  void Stop() { listener_.Stop(); }

  int port() const { return listener_.port(); }
  // Tunnels opened, and the "host:port" each asked for, in order.
  std::vector<std::string> targets() const;
  // Connections refused for bad credentials.
  int auth_failures() const { return auth_failures_.load(); }

 private:
  void Serve(int client);

  const std::string username_;
  const std::string password_;
  std::atomic<int> auth_failures_{0};
  mutable absl::Mutex mu_;
  std::vector<std::string> targets_ ABSL_GUARDED_BY(mu_);
  // Last: stopped (threads joined) before the members above go.
  LoopbackListener listener_;
};

}  // namespace fetchd::testing

#endif  // FETCHD_TESTS_TESTING_SOCKS5_SERVER_H_
