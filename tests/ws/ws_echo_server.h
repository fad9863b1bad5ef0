// WsEchoServer: a real WebSocket server for tests, on Boost.Beast, on
// 127.0.0.1 port 0, plain (ws) or TLS (wss, with a TestPki certificate).
// One thread accepts; each connection gets its own thread.
//
// Routes (the request path):
//   /echo    echoes every message with its type; offers back the
//            subprotocol "echo.v1" when the client offers it.
//   /reject  answers HTTP 403 instead of upgrading.
//   /close   on the first message, closes with 4000 "bye".
//   /silent  accepts and reads, never sends.
//   /big     on a message "N", sends one binary message of N bytes.
// Every connection's end is recorded: the close code the client sent
// (1006 when the connection ended without a close frame).
//
// Thread-safe.
#ifndef FETCHD_TESTS_WS_WS_ECHO_SERVER_H_
#define FETCHD_TESTS_WS_WS_ECHO_SERVER_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace fetchd::testing {

class WsEchoServer {
 public:
  // TLS when cert_file is set (PEM chain and key files).
  static absl::StatusOr<std::unique_ptr<WsEchoServer>> Start(
      const std::string& cert_file = "", const std::string& key_file = "");
  ~WsEchoServer();

  int port() const;
  // "ws://127.0.0.1:PORT" or "wss://127.0.0.1:PORT".
  std::string base_url() const;
  // Connections accepted so far (TCP).
  int connections() const;
  // The close code of the next connection to end (in end order), waiting
  // up to `timeout`; nullopt if none ended in time.
  std::optional<int> NextClientClose(absl::Duration timeout);

  class Impl;

 private:
  explicit WsEchoServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace fetchd::testing

#endif  // FETCHD_TESTS_WS_WS_ECHO_SERVER_H_
