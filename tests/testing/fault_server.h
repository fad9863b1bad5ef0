// FaultServer: an HTTP/1.1 server on 127.0.0.1 that breaks the protocol on
// purpose, for the fault-injection tests. It answers what cpp-httplib (the
// TestHttpServer) can't be made to send: a connection reset in the middle of
// a body, a body shorter than its Content-Length, status lines that aren't
// HTTP, broken chunked framing, no reply at all. Hand-rolled on purpose: no
// library emits broken HTTP.
//
// Routes (any method; the path is matched without its query; one response
// per connection, which is then closed as the route says):
//   /reset-mid-body    200 with "Content-Length: 65536", 1024 body bytes,
//                      then a TCP reset (SO_LINGER 0).
//   /truncated         200 with "Content-Length: 1000", 10 body bytes, then
//                      a clean close (FIN).
//   /bad-status        "HTTP/1.1 2x0 Maybe": a status code that isn't one.
//   /not-http          "SSH-2.0-OpenSSH_9.2": not HTTP at all.
//   /bad-chunk         200, "Transfer-Encoding: chunked", then a chunk size
//                      that isn't hex.
//   /no-reply          reads the request and closes without a byte.
//   anything else      404 "status 404".
//
// Thread safety: Start() and Stop() from the owning thread; Requests() from
// any thread. Each connection is served on its own thread.

#ifndef FETCHD_TESTS_TESTING_FAULT_SERVER_H_
#define FETCHD_TESTS_TESTING_FAULT_SERVER_H_

#include <map>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "tests/testing/loopback_listener.h"

namespace fetchd::testing {

class FaultServer {
 public:
  FaultServer() : listener_([this](int fd) { Serve(fd); }) {}
  ~FaultServer() { Stop(); }
  FaultServer(const FaultServer&) = delete;
  FaultServer& operator=(const FaultServer&) = delete;

  // Listens on 127.0.0.1, port 0.
  absl::Status Start() { return listener_.Start(); }
  // Closes the listener and every open connection; joins the threads.
  void Stop() { listener_.Stop(); }

  int port() const { return listener_.port(); }
  // "http://127.0.0.1:PORT" + `path`.
  std::string Url(absl::string_view path) const;
  // Requests received for `path` (no query).
  int Requests(absl::string_view path) const;

 private:
  void Serve(int fd);

  mutable absl::Mutex mu_;
  std::map<std::string, int, std::less<>> requests_ ABSL_GUARDED_BY(mu_);
  // Last: stopped (threads joined) before the members above go.
  LoopbackListener listener_;
};

}  // namespace fetchd::testing

#endif  // FETCHD_TESTS_TESTING_FAULT_SERVER_H_
