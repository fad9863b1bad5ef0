// PrivateResolver: puts the test process in a network of its own with a
// resolver the test controls. Start() moves the process into new network
// and mount namespaces (only `lo`, brought up), bind-mounts a resolv.conf
// naming 127.0.0.1 over /etc/resolv.conf, and starts dnsmasq there with no
// upstream, no hosts file and only the test's --address rules. No packet
// leaves the namespace and no outside DNS server is ever asked; names the
// rules don't cover don't resolve.
//
// Needs root (CAP_SYS_ADMIN), as `make test` has on CI. Irreversible for
// the process: a test binary of its own calls RunTestsInPrivateNetwork()
// from its main().
#ifndef FETCHD_TESTS_TESTING_PRIVATE_RESOLVER_H_
#define FETCHD_TESTS_TESTING_PRIVATE_RESOLVER_H_

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "gtest/gtest.h"

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

// main() of a test binary whose tests run in the private network: gtest
// with a PrivateResolver serving `addresses` (see Start()) for the whole
// run. Listing the tests (ctest's discovery) enters no namespace.
inline int RunTestsInPrivateNetwork(int argc, char** argv,
                                    std::vector<std::string> addresses,
                                    std::string probe) {
  class Environment : public ::testing::Environment {
   public:
    Environment(std::vector<std::string> addresses, std::string probe)
        : addresses_(std::move(addresses)), probe_(std::move(probe)) {}
    void SetUp() override {
      const absl::Status started = resolver_.Start(addresses_, probe_);
      ASSERT_TRUE(started.ok()) << started;
    }
    void TearDown() override { resolver_.Stop(); }

   private:
    const std::vector<std::string> addresses_;
    const std::string probe_;
    PrivateResolver resolver_;
  };
  ::testing::InitGoogleTest(&argc, argv);
  if (!::testing::GTEST_FLAG(list_tests)) {
    ::testing::AddGlobalTestEnvironment(
        new Environment(std::move(addresses), std::move(probe)));
  }
  return RUN_ALL_TESTS();
}

}  // namespace fetchd::testing

#endif  // FETCHD_TESTS_TESTING_PRIVATE_RESOLVER_H_
