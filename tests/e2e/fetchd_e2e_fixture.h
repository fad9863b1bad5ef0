// The fixture of the end-to-end tests: a temporary directory, an in-process
// TestHttpServer on loopback, and helpers that run the real fetchd and
// fetchctl binaries (FETCHD_BIN and FETCHCTL_BIN, defined by the build) as
// child processes with bounded waits.
#ifndef FETCHD_TESTS_E2E_FETCHD_E2E_FIXTURE_H_
#define FETCHD_TESTS_E2E_FETCHD_E2E_FIXTURE_H_

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/e2e/fetchd_launcher.h"
#include "tests/e2e/subprocess.h"
#include "tests/testing/test_http_server.h"

namespace fetchd::testing {

// Longest a child may run before it is killed and the test fails.
inline constexpr absl::Duration kProcessTimeout = absl::Seconds(30);
// Longest fetchd may take to write its port file.
inline constexpr absl::Duration kStartTimeout = absl::Seconds(10);

// Calls `done` every few milliseconds until it returns true or `timeout`
// passes; returns its last answer. Only for conditions that nothing can await.
template <typename Predicate>
bool PollUntil(Predicate done, absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (!done()) {
    if (absl::Now() >= deadline) {
      return false;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  return true;
}

// Each test gets its own directory and HTTP server; at most one fetchd
// server per test (fetchd_), killed at the end of the test.
class FetchdE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(http_.Start().ok());
    std::string dir_template =
        (std::filesystem::temp_directory_path() / "fetchd_e2e.XXXXXX").string();
    ASSERT_NE(mkdtemp(dir_template.data()), nullptr);
    dir_ = dir_template;
  }

  void TearDown() override {
    if (fetchd_ != nullptr) {
      const ExitInfo info = fetchd_->Wait(absl::ZeroDuration());  // Kills.
      if (HasFailure()) {
        std::cerr << "fetchd: " << Describe(info) << "\n";
      }
      fetchd_.reset();
    }
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  // Writes `content` to a new file in the test's directory; returns its
  // path.
  std::string WriteFile(absl::string_view name, absl::string_view content) {
    std::string path = (dir_ / std::string(name)).string();
    std::ofstream(path) << content;
    return path;
  }

  // Starts fetchd on 127.0.0.1:0 with `flags` and the environment entries
  // `env` ("NAME=value"), and waits until it has written its port file. Call
  // with ASSERT_NO_FATAL_FAILURE.
  void StartFetchd(std::vector<std::string> flags,
                   std::vector<std::string> env = {}) {
    absl::StatusOr<RunningFetchd> started =
        StartFetchdProcess(FETCHD_BIN, (dir_ / "port").string(), flags,
                           std::move(env), kStartTimeout);
    ASSERT_TRUE(started.ok()) << started.status();
    fetchd_ = std::move(started->process);
    fetchd_address_ = std::move(started->address);
  }

  std::vector<std::string> FetchctlArgv(std::vector<std::string> args) const {
    std::vector<std::string> argv = {FETCHCTL_BIN, "--server", fetchd_address_,
                                     "--no-progress"};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  // Runs fetchctl against our fetchd and waits for it.
  ExitInfo RunFetchctl(std::vector<std::string> args) {
    absl::StatusOr<ExitInfo> info =
        RunSubprocess(FetchctlArgv(std::move(args)), kProcessTimeout);
    EXPECT_TRUE(info.ok()) << info.status();
    return info.ok() ? *std::move(info) : ExitInfo{};
  }

  // Runs fetchd with `flags` (e.g. --check_config) and the environment
  // entries `env`, and waits for it.
  ExitInfo RunFetchd(std::vector<std::string> flags,
                     std::vector<std::string> env = {}) {
    flags.insert(flags.begin(), FETCHD_BIN);
    absl::StatusOr<ExitInfo> info =
        RunSubprocess(std::move(flags), kProcessTimeout, std::move(env));
    EXPECT_TRUE(info.ok()) << info.status();
    return info.ok() ? *std::move(info) : ExitInfo{};
  }

  TestHttpServer http_;
  std::filesystem::path dir_;
  std::unique_ptr<Subprocess> fetchd_;
  std::string fetchd_address_;
};

}  // namespace fetchd::testing

#endif  // FETCHD_TESTS_E2E_FETCHD_E2E_FIXTURE_H_
