// TlsServer: a minimal HTTPS server on 127.0.0.1 (port 0) that requires a
// client certificate chaining to `client_ca_file` *in the handshake*
// (OpenSSL SSL_VERIFY_FAIL_IF_NO_PEER_CERT), as a strict target does. A
// refused certificate ends the connection with a TLS alert: inside the
// handshake under TLS 1.2, after the client's side of it under TLS 1.3 (the
// client reads the alert where it expects the response). nginx can't do
// this: it finishes the handshake and answers 400. An accepted client gets
// "HTTP/1.1 200 OK" with body "ok".
//
// Thread-safety: Start() and the destructor from the owning thread.
#ifndef FETCHD_TESTS_TESTING_TLS_SERVER_H_
#define FETCHD_TESTS_TESTING_TLS_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/status.h"

namespace fetchd::testing {

class LoopbackListener;

struct TlsServerOptions {
  std::string cert_file;
  std::string key_file;
  std::string client_ca_file;
  // "1.2" or "1.3": the only version offered.
  std::string tls_version = "1.3";
};

class TlsServer {
 public:
  explicit TlsServer(TlsServerOptions options);
  ~TlsServer();
  TlsServer(const TlsServer&) = delete;
  TlsServer& operator=(const TlsServer&) = delete;

  absl::Status Start();
  int port() const;
  // "https://127.0.0.1:PORT" + path.
  std::string Url(const std::string& path) const;

 private:
  struct Context;
  void Serve(int fd);

  const TlsServerOptions options_;
  std::unique_ptr<Context> context_;
  std::unique_ptr<LoopbackListener> listener_;
};

}  // namespace fetchd::testing

#endif  // FETCHD_TESTS_TESTING_TLS_SERVER_H_
