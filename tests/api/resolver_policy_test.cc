// The destination policy against names that resolve to denied addresses,
// through a resolver the test controls. The test process moves itself into
// a network namespace of its own (only `lo`, up) and a private mount
// namespace whose /etc/resolv.conf points at a dnsmasq on 127.0.0.1, so no
// packet leaves the namespace and no outside DNS server is ever asked.
// Needs root (CAP_SYS_ADMIN), as `make test` has on CI; fails otherwise.
#include <fcntl.h>
#include <net/if.h>
#include <netdb.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/api/service_harness.h"
#include "tests/testing/test_http_server.h"

extern char** environ;

namespace fetchd::testing {
namespace {

using fetch::v1::BatchRequest;
using fetch::v1::FetchResult;
using ::testing::HasSubstr;

constexpr char kDnsmasq[] = "/usr/sbin/dnsmasq";

absl::Status Errno(const std::string& what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

// Private network and mount namespaces, `lo` up, resolv.conf replaced.
absl::Status EnterPrivateNetwork(const std::string& resolv_conf) {
  if (unshare(CLONE_NEWNET | CLONE_NEWNS) != 0) {
    return Errno("unshare(CLONE_NEWNET | CLONE_NEWNS) (needs root)");
  }
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
    return Errno("mount --make-rprivate /");
  }
  if (mount(resolv_conf.c_str(), "/etc/resolv.conf", nullptr, MS_BIND,
            nullptr) != 0) {
    return Errno("bind mount over /etc/resolv.conf");
  }
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket");
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  const bool up = ioctl(fd, SIOCGIFFLAGS, &ifr) == 0 &&
                  (ifr.ifr_flags |= IFF_UP, ioctl(fd, SIOCSIFFLAGS, &ifr) == 0);
  const absl::Status status = up ? absl::OkStatus() : Errno("ifup lo");
  close(fd);
  return status;
}

// dnsmasq answering only for the test's names, from no file and no
// upstream.
class Resolver : public ::testing::Environment {
 public:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           absl::StrCat("fetchd_resolver_", getpid());
    std::filesystem::create_directories(dir_);
    const std::string resolv = (dir_ / "resolv.conf").string();
    std::ofstream(resolv) << "nameserver 127.0.0.1\noptions attempts:1\n";
    const absl::Status entered = EnterPrivateNetwork(resolv);
    ASSERT_TRUE(entered.ok()) << entered;
    ASSERT_EQ(access(kDnsmasq, X_OK), 0)
        << kDnsmasq << " missing: install the Debian package dnsmasq-base "
        << "(scripts/install-deps.sh)";
    std::vector<std::string> args = {
        kDnsmasq,
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--user=root",
        "--pid-file=",
        "--no-resolv",
        "--no-hosts",
        "--listen-address=127.0.0.1",
        "--bind-interfaces",
        "--port=53",
        "--address=/rebind.test/127.0.0.1",
        "--address=/metadata.test/169.254.169.254"};
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    ASSERT_EQ(
        posix_spawn(&pid_, kDnsmasq, nullptr, nullptr, argv.data(), environ),
        0);
    // Another process: wait, boundedly, until it answers.
    const absl::Time deadline = absl::Now() + absl::Seconds(10);
    while (!Resolves("rebind.test")) {
      ASSERT_LT(absl::Now(), deadline) << "dnsmasq did not start answering";
      absl::SleepFor(absl::Milliseconds(20));
    }
  }

  void TearDown() override {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  static bool Resolves(const char* name) {
    addrinfo hints{};
    hints.ai_family = AF_INET;
    addrinfo* result = nullptr;
    if (getaddrinfo(name, "80", &hints, &result) != 0) return false;
    freeaddrinfo(result);
    return true;
  }

 private:
  std::filesystem::path dir_;
  pid_t pid_ = -1;
};

class ResolverPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(http_.Start().ok());
    ASSERT_TRUE(other_.Start().ok());
    fetchd_.config().mutable_policy()->clear_allow();
  }

  std::string At(const std::string& host, const TestHttpServer& server,
                 const std::string& path) const {
    return absl::StrCat("http://", host, ":", server.port(), path);
  }

  TestHttpServer http_;
  TestHttpServer other_;
  ServiceHarness fetchd_;
};

TEST_F(ResolverPolicyTest, NameResolvingToLoopbackIsDeniedOnConnect) {
  fetchd_.Start();
  BatchRequest batch;
  AddUrl(&batch, At("rebind.test", http_, "/ok"));
  AddUrl(&batch, At("metadata.test", http_, "/latest/meta-data/"));
  const auto results = fetchd_.RunByIndex(batch);
  EXPECT_EQ(results[0].error(), fetch::v1::ERROR_KIND_DENIED)
      << results[0].error_message();
  EXPECT_THAT(results[0].error_message(),
              HasSubstr(absl::StrCat("destination 127.0.0.1:", http_.port(),
                                     " denied by policy (rule: loopback")));
  EXPECT_EQ(results[1].error(), fetch::v1::ERROR_KIND_DENIED)
      << results[1].error_message();
  EXPECT_THAT(results[1].error_message(),
              HasSubstr("169.254.169.254:" + std::to_string(http_.port()) +
                        " denied by policy (rule: link-local"));
  EXPECT_EQ(http_.TotalRequests(), 0);
}

// The same name works once the config allows its address: the denial above
// is the policy's, not a failure to resolve.
TEST_F(ResolverPolicyTest, AllowedOnlyByExplicitConfig) {
  fetch::v1::AddressRule* rule = fetchd_.config().mutable_policy()->add_allow();
  rule->set_cidr("127.0.0.1");
  rule->add_ports(static_cast<uint32_t>(http_.port()));
  fetchd_.Start();
  BatchRequest batch;
  AddUrl(&batch, At("rebind.test", http_, "/ok"));
  // A redirect from the allowed server to the same name on another port.
  AddUrl(&batch,
         At("rebind.test", http_,
            "/redirect?to=" + UrlEncode(At("rebind.test", other_, "/ok"))));
  const auto results = fetchd_.RunByIndex(batch);
  EXPECT_EQ(results[0].status(), 200u) << results[0].error_message();
  EXPECT_EQ(results[0].remote_address(),
            "127.0.0.1:" + std::to_string(http_.port()));
  EXPECT_EQ(results[1].error(), fetch::v1::ERROR_KIND_DENIED)
      << results[1].error_message();
  EXPECT_EQ(results[1].redirects(), 1u);
  EXPECT_EQ(other_.TotalRequests(), 0);
}

TEST_F(ResolverPolicyTest, UnknownNameIsADnsError) {
  fetchd_.Start();
  BatchRequest batch;
  fetch::v1::FetchRequest* r = AddUrl(&batch, "http://nowhere.test/");
  r->mutable_retry()->set_max_attempts(1);
  const FetchResult result = fetchd_.Run(batch).at(0);
  EXPECT_EQ(result.error(), fetch::v1::ERROR_KIND_DNS)
      << result.error_message();
}

}  // namespace
}  // namespace fetchd::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  // Listing the tests (ctest's discovery) needs no namespace.
  if (!::testing::GTEST_FLAG(list_tests)) {
    ::testing::AddGlobalTestEnvironment(new fetchd::testing::Resolver);
  }
  return RUN_ALL_TESTS();
}
