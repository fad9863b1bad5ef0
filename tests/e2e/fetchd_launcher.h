// Starting a fetchd child for end-to-end tests: on 127.0.0.1:0, waiting
// (boundedly) until it has written the port it serves on.
//
// Thread-compatible; the returned Subprocess is thread-safe.
#ifndef FETCHD_TESTS_E2E_FETCHD_LAUNCHER_H_
#define FETCHD_TESTS_E2E_FETCHD_LAUNCHER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "tests/e2e/subprocess.h"

namespace fetchd::testing {

struct RunningFetchd {
  std::unique_ptr<Subprocess> process;
  // "127.0.0.1:PORT".
  std::string address;
};

// Starts `binary` with --listen=127.0.0.1:0 --port_file=`port_file`
// --metrics_listen=127.0.0.1:0 (so that fetchds started at once don't
// compete for the metrics port), then `flags`, and the environment entries
// `env` ("NAME=value", see Subprocess::Start), and waits up to `timeout` for
// the port file.
//
// Errors: those of Subprocess::Start(); DeadlineExceeded if fetchd wrote no
// port in time or exited first, with its exit and output (it is killed).
absl::StatusOr<RunningFetchd> StartFetchdProcess(
    const std::string& binary, const std::string& port_file,
    const std::vector<std::string>& flags, std::vector<std::string> env,
    absl::Duration timeout);

}  // namespace fetchd::testing

#endif  // FETCHD_TESTS_E2E_FETCHD_LAUNCHER_H_
