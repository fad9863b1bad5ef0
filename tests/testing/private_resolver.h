// PrivateResolver: puts the test process in a network of its own with a
// resolver the test controls. Start() moves the process into new network
// and mount namespaces (only `lo`, brought up), bind-mounts a resolv.conf
// naming 127.0.0.1 over /etc/resolv.conf, and starts dnsmasq there with no
// upstream, no hosts file and only the test's --address rules. No packet
// leaves the namespace and no outside DNS server is ever asked; names the
// rules don't cover don't resolve.
//
// Needs root (CAP_SYS_ADMIN), as `make test` has on CI. Irreversible for
// the process: use it from a gtest Environment of a binary of its own.
#ifndef FETCHD_TESTS_TESTING_PRIVATE_RESOLVER_H_
#define FETCHD_TESTS_TESTING_PRIVATE_RESOLVER_H_

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace fetchd::testing {

class PrivateResolver {
 public:
  PrivateResolver() = default;
  ~PrivateResolver() { Stop(); }
  PrivateResolver(const PrivateResolver&) = delete;
  PrivateResolver& operator=(const PrivateResolver&) = delete;

  // `addresses`: dnsmasq --address values, e.g. "/rebind.test/127.0.0.1"
  // (a name and its subdomains to an address) or "/nx.test/" (NXDOMAIN).
  // Returns once `probe` (a name the rules resolve) resolves.
  absl::Status Start(const std::vector<std::string>& addresses,
                     const std::string& probe);
  // Stops dnsmasq and removes its files; the namespaces stay.
  void Stop();

  // Whether `name` resolves to an IPv4 address through the system resolver.
  static bool Resolves(const char* name);

 private:
  std::filesystem::path dir_;
  pid_t pid_ = -1;
};

}  // namespace fetchd::testing

#endif  // FETCHD_TESTS_TESTING_PRIVATE_RESOLVER_H_
