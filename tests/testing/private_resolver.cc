#include "tests/testing/private_resolver.h"

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
#include <fstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

extern char** environ;

namespace fetchd::testing {
namespace {

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

}  // namespace

absl::Status PrivateResolver::Start(const std::vector<std::string>& addresses,
                                    const std::string& probe) {
  dir_ = std::filesystem::temp_directory_path() /
         absl::StrCat("fetchd_resolver_", getpid());
  std::filesystem::create_directories(dir_);
  const std::string resolv = (dir_ / "resolv.conf").string();
  std::ofstream(resolv) << "nameserver 127.0.0.1\noptions attempts:1\n";
  if (absl::Status s = EnterPrivateNetwork(resolv); !s.ok()) return s;
  if (access(kDnsmasq, X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(kDnsmasq,
                     " missing: install the Debian package "
                     "dnsmasq-base (scripts/install-deps.sh)"));
  }
  std::vector<std::string> args = {kDnsmasq,
                                   "--keep-in-foreground",
                                   "--conf-file=/dev/null",
                                   "--user=root",
                                   "--pid-file=",
                                   "--no-resolv",
                                   "--no-hosts",
                                   "--listen-address=127.0.0.1",
                                   "--bind-interfaces",
                                   "--port=53"};
  for (const std::string& a : addresses) args.push_back("--address=" + a);
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  if (posix_spawn(&pid_, kDnsmasq, nullptr, nullptr, argv.data(), environ) !=
      0) {
    pid_ = -1;
    return Errno("posix_spawn dnsmasq");
  }
  // Another process: wait, boundedly, until it answers.
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (!Resolves(probe.c_str())) {
    if (absl::Now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("dnsmasq did not start answering for ", probe));
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::OkStatus();
}

void PrivateResolver::Stop() {
  if (pid_ > 0) {
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  if (!dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
    dir_.clear();
  }
}

bool PrivateResolver::Resolves(const char* name) {
  addrinfo hints{};
  hints.ai_family = AF_INET;
  addrinfo* result = nullptr;
  if (getaddrinfo(name, "80", &hints, &result) != 0) return false;
  freeaddrinfo(result);
  return true;
}

}  // namespace fetchd::testing
