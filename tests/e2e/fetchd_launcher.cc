#include "tests/e2e/fetchd_launcher.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace fetchd::testing {

absl::StatusOr<RunningFetchd> StartFetchdProcess(
    const std::string& binary, const std::string& port_file,
    const std::vector<std::string>& flags, std::vector<std::string> env,
    absl::Duration timeout) {
  // A port file left by an earlier fetchd would be taken for this one's.
  std::error_code ignored;
  std::filesystem::remove(port_file, ignored);
  std::vector<std::string> argv = {binary, "--listen=127.0.0.1:0",
                                   "--port_file=" + port_file,
                                   "--metrics_listen=127.0.0.1:0"};
  // fetchd denies loopback destinations by default; the tests' servers are
  // on loopback. A test that checks the policy passes its own.
  if (std::none_of(flags.begin(), flags.end(), [](const std::string& flag) {
        return absl::StartsWith(flag, "--policy_allow");
      })) {
    argv.push_back("--policy_allow=127.0.0.0/8,::1");
  }
  argv.insert(argv.end(), flags.begin(), flags.end());
  absl::StatusOr<std::unique_ptr<Subprocess>> started =
      Subprocess::Start(std::move(argv), std::move(env));
  if (!started.ok()) {
    return started.status();
  }
  RunningFetchd fetchd{*std::move(started), ""};

  // fetchd writes "PORT\n" after it has started serving. It is another
  // process, so poll its file, briefly and boundedly.
  const absl::Time deadline = absl::Now() + timeout;
  while (absl::Now() < deadline) {
    std::ifstream in(port_file);
    std::stringstream text;
    text << in.rdbuf();
    int port = 0;
    const std::string content = text.str();
    if (absl::EndsWith(content, "\n") &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(content), &port) &&
        port > 0) {
      fetchd.address = absl::StrCat("127.0.0.1:", port);
      return fetchd;
    }
    if (fetchd.process->HasExited()) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  const ExitInfo info = fetchd.process->Wait(absl::ZeroDuration());  // Kills.
  return absl::DeadlineExceededError(
      absl::StrCat("fetchd did not write its port: ", Describe(info),
                   "\nstdout:\n", info.stdout_text));
}

}  // namespace fetchd::testing
