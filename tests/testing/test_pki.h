// TestPki: a throwaway certificate authority for TLS/mTLS tests, made at
// test time with the OpenSSL library: a CA, a server certificate for
// 127.0.0.1 and localhost, and client certificates whose SAN is a caller
// name (plus one client certificate from a second, untrusted CA). Keys are
// EC P-256; certificates are valid from an hour ago for a day.
//
// Generated rather than checked in: no private key lives in the repository,
// nothing expires in CI years from now, and a test can issue the names it
// needs. Creating one takes a few milliseconds.
//
// Thread-compatible.
#ifndef FETCHD_TESTS_TESTING_TEST_PKI_H_
#define FETCHD_TESTS_TESTING_TEST_PKI_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace fetchd::testing {

struct TestPki {
  // Paths of PEM files in the directory given to Create().
  std::string ca_cert;      // the trusted CA
  std::string server_cert;  // SAN IP:127.0.0.1, DNS:localhost
  std::string server_key;
  // Each client's certificate and key: DIR/NAME.pem, DIR/NAME.key; SAN
  // DNS:NAME, CN NAME.
  std::string ClientCert(const std::string& name) const {
    return dir + "/" + name + ".pem";
  }
  std::string ClientKey(const std::string& name) const {
    return dir + "/" + name + ".key";
  }
  // A client certificate for "intruder" signed by another CA.
  std::string untrusted_client_cert;
  std::string untrusted_client_key;
  std::string dir;

  // Writes the files into the existing directory `dir`, with one client
  // certificate per name of `client_names` (valid DNS labels).
  static absl::StatusOr<TestPki> Create(
      const std::string& dir, const std::vector<std::string>& client_names);
};

// The contents of `path` ("" if it can't be read).
std::string ReadTextFile(const std::string& path);

}  // namespace fetchd::testing

#endif  // FETCHD_TESTS_TESTING_TEST_PKI_H_
