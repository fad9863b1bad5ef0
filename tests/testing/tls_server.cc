#include "tests/testing/tls_server.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "tests/testing/loopback_listener.h"

namespace fetchd::testing {

struct TlsServer::Context {
  ~Context() { SSL_CTX_free(ctx); }
  SSL_CTX* ctx = nullptr;
};

TlsServer::TlsServer(TlsServerOptions options)
    : options_(std::move(options)), context_(std::make_unique<Context>()) {}

TlsServer::~TlsServer() {
  if (listener_ != nullptr) listener_->Stop();
}

absl::Status TlsServer::Start() {
  // OpenSSL writes with write(2): a client that already hung up must not
  // kill the test process.
  signal(SIGPIPE, SIG_IGN);
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (ctx == nullptr) return absl::InternalError("SSL_CTX_new failed");
  context_->ctx = ctx;
  const int version =
      options_.tls_version == "1.2" ? TLS1_2_VERSION : TLS1_3_VERSION;
  if (SSL_CTX_set_min_proto_version(ctx, version) != 1 ||
      SSL_CTX_set_max_proto_version(ctx, version) != 1 ||
      SSL_CTX_use_certificate_chain_file(ctx, options_.cert_file.c_str()) !=
          1 ||
      SSL_CTX_use_PrivateKey_file(ctx, options_.key_file.c_str(),
                                  SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_load_verify_locations(ctx, options_.client_ca_file.c_str(),
                                    nullptr) != 1) {
    return absl::InternalError("configuring the TLS server failed");
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                     nullptr);
  listener_ = std::make_unique<LoopbackListener>([this](int fd) { Serve(fd); });
  return listener_->Start();
}

int TlsServer::port() const { return listener_->port(); }

std::string TlsServer::Url(const std::string& path) const {
  return absl::StrCat("https://127.0.0.1:", port(), path);
}

void TlsServer::Serve(int fd) {
  SSL* ssl = SSL_new(context_->ctx);
  if (ssl == nullptr) return;
  SSL_set_fd(ssl, fd);
  if (SSL_accept(ssl) == 1) {
    char buf[4096];
    // The request's head; a refused certificate fails here under TLS 1.3.
    if (SSL_read(ssl, buf, sizeof(buf)) > 0) {
      static constexpr char kResponse[] =
          "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
      SSL_write(ssl, kResponse, sizeof(kResponse) - 1);
      SSL_shutdown(ssl);
    }
  }
  ERR_clear_error();
  SSL_free(ssl);
  // Lingering close, as nginx does: the client's request may still be in
  // flight; closing on it would reset the connection before the client
  // read the alert. Read until the client closes (Stop() ends this too).
  shutdown(fd, SHUT_WR);
  char drain[4096];
  while (read(fd, drain, sizeof(drain)) > 0) {
  }
}

}  // namespace fetchd::testing
