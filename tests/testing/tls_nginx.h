// TlsNginx: an nginx serving TLS (and HTTP/2) with a server certificate for
// 127.0.0.1 from a fresh test CA (plus a "client" certificate of that CA),
// for tests of fetchd's TLS options. The certificates' directory is removed
// with the object, after the nginx has stopped.
#ifndef FETCHD_TESTS_TESTING_TLS_NGINX_H_
#define FETCHD_TESTS_TESTING_TLS_NGINX_H_

#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "tests/testing/nginx_server.h"
#include "tests/testing/test_pki.h"

namespace fetchd::testing {

class TlsNginx {
 public:
  TlsNginx() = default;
  TlsNginx(const TlsNginx&) = delete;
  TlsNginx& operator=(const TlsNginx&) = delete;
  ~TlsNginx() {
    nginx_.reset();  // before its certificates go
    if (!dir_.empty()) {
      std::error_code ignored;
      std::filesystem::remove_all(dir_, ignored);
    }
  }

  // With `require_client_cert`, nginx serves only clients with a
  // certificate of the test CA.
  absl::Status Start(bool require_client_cert) {
    std::string dir =
        (std::filesystem::temp_directory_path() / "fetchd_conn_pki.XXXXXX")
            .string();
    if (mkdtemp(dir.data()) == nullptr) {
      return absl::InternalError("mkdtemp failed");
    }
    dir_ = dir;
    absl::StatusOr<TestPki> pki = TestPki::Create(dir, {"client"});
    if (!pki.ok()) return pki.status();
    pki_ = *std::move(pki);
    NginxOptions options;
    options.cert_file = pki_.server_cert;
    options.key_file = pki_.server_key;
    if (require_client_cert) options.client_ca_file = pki_.ca_cert;
    nginx_ = std::make_unique<NginxServer>(options);
    return nginx_->Start();
  }

  const TestPki& pki() const { return pki_; }
  NginxServer& nginx() { return *nginx_; }

 private:
  std::string dir_;
  TestPki pki_;
  std::unique_ptr<NginxServer> nginx_;
};

}  // namespace fetchd::testing

#endif  // FETCHD_TESTS_TESTING_TLS_NGINX_H_
