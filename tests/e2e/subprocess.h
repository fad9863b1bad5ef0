// A child process for end-to-end tests: spawns a binary with stdin from
// /dev/null and stdout/stderr captured through pipes, and waits for it with a
// bound, so that a hung binary fails its test instead of hanging CI.
//
// The child gets the parent's environment minus the proxy variables (which
// libcurl and gRPC would honour) and every FETCHD_* variable (fetchd's config
// overrides, fetchctl's $FETCHD_SERVER), so tests stay on loopback and on
// their own config whatever the machine's environment says; a test adds
// the variables it wants.
//
// Thread safety: every method may be called from any thread; Signal() and
// HasExited() wait while another thread is in Wait(). The destructor kills
// (SIGKILL) and reaps a child that is still running; it must not run
// concurrently with other methods.
//
// Limitation: the output is complete once the child has ended only if no
// grandchild inherited its stdout/stderr (true of fetchd and fetchctl).
#ifndef FETCHD_TESTS_E2E_SUBPROCESS_H_
#define FETCHD_TESTS_E2E_SUBPROCESS_H_

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace fetchd::testing {

// How a child ended and what it wrote.
struct ExitInfo {
  // The exit status if the child exited normally, else -1.
  int exit_code = -1;
  // The signal that ended the child, else 0.
  int term_signal = 0;
  // Whether Wait() gave up and killed the child.
  bool timed_out = false;
  std::string stdout_text;
  std::string stderr_text;
  // The child's peak resident set (rusage ru_maxrss), once reaped.
  int64_t max_rss_kib = 0;
};

// "exit 3", "signal 9 (killed after the wait timed out)", ... plus the
// child's stderr; for assertion messages.
std::string Describe(const ExitInfo& info);

class Subprocess {
 public:
  // Starts argv[0] (a path, not searched in $PATH) with `argv`, and with
  // `env` ("NAME=value" entries) added to the environment described above.
  // Errors: InvalidArgument for an empty argv or an entry of `env` without
  // '=', Internal if a pipe or the process cannot be created.
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(
      std::vector<std::string> argv, std::vector<std::string> env = {});

  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  // Kills and reaps the child if it has not been waited for.
  ~Subprocess();

  pid_t pid() const { return pid_; }

  // Sends `signal` to the child unless it has been reaped. Returns whether
  // it was sent.
  bool Signal(int signal);

  // Blocks until the child's stderr contains `text` or `timeout` passes (or
  // the pipes close); returns whether it does.
  bool AwaitStderr(absl::string_view text, absl::Duration timeout);
  // The same for stdout.
  bool AwaitStdout(absl::string_view text, absl::Duration timeout);

  // Whether the child has ended; reaps it if so (Wait() then returns at
  // once). Does not block.
  bool HasExited();

  // Waits for the child to end, for at most `timeout`; then kills it with
  // SIGKILL (and sets timed_out). Returns its exit and everything it wrote.
  // Later calls return the same ExitInfo.
  ExitInfo Wait(absl::Duration timeout);

 private:
  Subprocess(pid_t pid, int pidfd, int stdout_fd, int stderr_fd);

  // Drains both pipes until they close; runs on reader_.
  void ReadPipes(int stdout_fd, int stderr_fd);
  enum class Stream { kStdout, kStderr };
  bool AwaitOutput(Stream stream, absl::string_view text,
                   absl::Duration timeout);
  const std::string& Output(Stream stream) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(output_mu_) {
    return stream == Stream::kStdout ? stdout_text_ : stderr_text_;
  }
  // Reaps the child if it has ended; blocks if `block`. Returns whether it
  // has been reaped.
  bool Reap(bool block) ABSL_EXCLUSIVE_LOCKS_REQUIRED(wait_mu_);

  const pid_t pid_;
  const int pidfd_;  // Readable once the child has ended.

  // Serializes waiting and signalling, so no signal goes to a reaped pid.
  absl::Mutex wait_mu_;
  std::optional<int> wait_status_ ABSL_GUARDED_BY(wait_mu_);
  int64_t max_rss_kib_ ABSL_GUARDED_BY(wait_mu_) = 0;
  bool timed_out_ ABSL_GUARDED_BY(wait_mu_) = false;

  mutable absl::Mutex output_mu_;
  std::string stdout_text_ ABSL_GUARDED_BY(output_mu_);
  std::string stderr_text_ ABSL_GUARDED_BY(output_mu_);
  bool pipes_closed_ ABSL_GUARDED_BY(output_mu_) = false;

  std::thread reader_;
};

// Start(argv, env), then Wait(timeout).
absl::StatusOr<ExitInfo> RunSubprocess(std::vector<std::string> argv,
                                       absl::Duration timeout,
                                       std::vector<std::string> env = {});

}  // namespace fetchd::testing

#endif  // FETCHD_TESTS_E2E_SUBPROCESS_H_
