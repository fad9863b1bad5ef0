#include "tests/e2e/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <iterator>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

extern char** environ;

namespace fetchd::testing {
namespace {

// Variables that would send the children's HTTP (libcurl) or gRPC traffic
// elsewhere than loopback. FETCHD_* variables (fetchd's config, fetchctl's
// server) are dropped too.
constexpr absl::string_view kDroppedEnv[] = {
    "http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
    "ALL_PROXY",  "no_proxy",   "NO_PROXY",    "grpc_proxy",  "GRPC_PROXY",
};

absl::string_view EnvName(absl::string_view entry) {
  return entry.substr(0, entry.find('='));
}

bool IsDropped(absl::string_view entry) {
  const absl::string_view name = EnvName(entry);
  return absl::StartsWith(name, "FETCHD_") ||
         std::find(std::begin(kDroppedEnv), std::end(kDroppedEnv), name) !=
             std::end(kDroppedEnv);
}

absl::Status ErrnoError(absl::string_view what, int error) {
  return absl::InternalError(
      absl::StrCat(what, ": ", std::generic_category().message(error)));
}

void CloseIfOpen(int fd) {
  if (fd >= 0) {
    close(fd);
  }
}

// Owns posix_spawn_file_actions_t.
class FileActions {
 public:
  FileActions() { posix_spawn_file_actions_init(&actions_); }
  FileActions(const FileActions&) = delete;
  FileActions& operator=(const FileActions&) = delete;
  ~FileActions() { posix_spawn_file_actions_destroy(&actions_); }
  posix_spawn_file_actions_t* get() { return &actions_; }

 private:
  posix_spawn_file_actions_t actions_;
};

}  // namespace

std::string Describe(const ExitInfo& info) {
  std::string out;
  if (info.exit_code >= 0) {
    out = absl::StrCat("exit ", info.exit_code);
  } else {
    out = absl::StrCat("signal ", info.term_signal);
  }
  if (info.timed_out) {
    out += " (killed after the wait timed out)";
  }
  absl::StrAppend(&out, "; stderr:\n", info.stderr_text);
  return out;
}

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(
    std::vector<std::string> argv, std::vector<std::string> extra_env) {
  if (argv.empty()) {
    return absl::InvalidArgumentError("empty argv");
  }
  for (const std::string& entry : extra_env) {
    if (entry.find('=') == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("environment entry without '=': ", entry));
    }
  }

  // Close-on-exec, so that no other child inherits these pipes and holds
  // them open; dup2() onto 1 and 2 clears the flag for this child.
  int out_pipe[2];
  int err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) {
    return ErrnoError("pipe2", errno);
  }
  if (pipe2(err_pipe, O_CLOEXEC) != 0) {
    const int error = errno;
    close(out_pipe[0]);
    close(out_pipe[1]);
    return ErrnoError("pipe2", error);
  }

  FileActions actions;
  posix_spawn_file_actions_addopen(actions.get(), STDIN_FILENO, "/dev/null",
                                   O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(actions.get(), out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(actions.get(), err_pipe[1], STDERR_FILENO);

  std::vector<char*> args;
  args.reserve(argv.size() + 1);
  for (std::string& arg : argv) {
    args.push_back(arg.data());
  }
  args.push_back(nullptr);
  std::vector<char*> env;
  for (char** entry = environ; *entry != nullptr; ++entry) {
    const bool replaced = std::any_of(
        extra_env.begin(), extra_env.end(), [&](const std::string& added) {
          return EnvName(added) == EnvName(*entry);
        });
    if (!IsDropped(*entry) && !replaced) {
      env.push_back(*entry);
    }
  }
  for (std::string& entry : extra_env) {
    env.push_back(entry.data());
  }
  env.push_back(nullptr);

  pid_t pid = -1;
  const int spawn_error = posix_spawn(&pid, args[0], actions.get(), nullptr,
                                      args.data(), env.data());
  close(out_pipe[1]);
  close(err_pipe[1]);
  if (spawn_error != 0) {
    close(out_pipe[0]);
    close(err_pipe[0]);
    return ErrnoError(absl::StrCat("posix_spawn ", argv[0]), spawn_error);
  }
  // The child cannot be reaped before we wait for it, so `pid` is still it.
  // glibc 2.36's <sys/pidfd.h> lacks extern "C", so call the kernel directly.
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd < 0) {
    const int error = errno;
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    close(out_pipe[0]);
    close(err_pipe[0]);
    return ErrnoError("pidfd_open", error);
  }
  return std::unique_ptr<Subprocess>(
      new Subprocess(pid, pidfd, out_pipe[0], err_pipe[0]));
}

Subprocess::Subprocess(pid_t pid, int pidfd, int stdout_fd, int stderr_fd)
    : pid_(pid), pidfd_(pidfd) {
  reader_ = std::thread(
      [this, stdout_fd, stderr_fd] { ReadPipes(stdout_fd, stderr_fd); });
}

Subprocess::~Subprocess() {
  Wait(absl::ZeroDuration());
  close(pidfd_);
}

void Subprocess::ReadPipes(int stdout_fd, int stderr_fd) {
  pollfd fds[2] = {{stdout_fd, POLLIN, 0}, {stderr_fd, POLLIN, 0}};
  int open_fds = 2;
  char buffer[16384];
  while (open_fds > 0) {
    if (poll(fds, 2, /*timeout=*/-1) < 0) {
      if (errno == EINTR) {
        continue;
      }
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) {
        continue;
      }
      const ssize_t n = read(fds[i].fd, buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {  // EOF or error: the child closed its end.
        close(fds[i].fd);
        fds[i].fd = -1;  // poll() ignores negative fds.
        --open_fds;
        continue;
      }
      absl::MutexLock lock(&output_mu_);
      (i == 0 ? stdout_text_ : stderr_text_)
          .append(buffer, static_cast<size_t>(n));
    }
  }
  CloseIfOpen(fds[0].fd);
  CloseIfOpen(fds[1].fd);
  absl::MutexLock lock(&output_mu_);
  pipes_closed_ = true;
}

bool Subprocess::Signal(int signal) {
  absl::MutexLock lock(&wait_mu_);
  if (wait_status_.has_value()) {
    return false;
  }
  return kill(pid_, signal) == 0;
}

bool Subprocess::AwaitStderr(absl::string_view text, absl::Duration timeout) {
  return AwaitOutput(Stream::kStderr, text, timeout);
}

bool Subprocess::AwaitStdout(absl::string_view text, absl::Duration timeout) {
  return AwaitOutput(Stream::kStdout, text, timeout);
}

bool Subprocess::AwaitOutput(Stream stream, absl::string_view text,
                             absl::Duration timeout) {
  absl::MutexLock lock(&output_mu_);
  const auto done = [this, stream, text]() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    return pipes_closed_ || absl::StrContains(Output(stream), text);
  };
  output_mu_.AwaitWithTimeout(absl::Condition(&done), timeout);
  return absl::StrContains(Output(stream), text);
}

bool Subprocess::HasExited() {
  absl::MutexLock lock(&wait_mu_);
  return wait_status_.has_value() || Reap(/*block=*/false);
}

bool Subprocess::Reap(bool block) {
  if (wait_status_.has_value()) {
    return true;
  }
  int status = 0;
  struct rusage usage = {};
  pid_t reaped;
  do {
    reaped = wait4(pid_, &status, block ? 0 : WNOHANG, &usage);
  } while (reaped < 0 && errno == EINTR);
  if (reaped != pid_) {
    return false;
  }
  wait_status_ = status;
  max_rss_kib_ = usage.ru_maxrss;
  return true;
}

ExitInfo Subprocess::Wait(absl::Duration timeout) {
  ExitInfo info;
  {
    absl::MutexLock lock(&wait_mu_);
    if (!wait_status_.has_value()) {
      const absl::Time deadline = absl::Now() + timeout;
      pollfd fd = {pidfd_, POLLIN, 0};
      int ready = 0;
      do {
        const int64_t ms = std::max<int64_t>(
            0, absl::ToInt64Milliseconds(deadline - absl::Now()));
        ready = poll(&fd, 1, static_cast<int>(std::min<int64_t>(ms, 60000)));
      } while ((ready < 0 && errno == EINTR) ||
               (ready == 0 && absl::Now() < deadline));
      if (ready <= 0) {
        kill(pid_, SIGKILL);
        timed_out_ = true;
      }
      Reap(/*block=*/true);
    }
    // The child is gone, so its pipes close: the reader ends. (Neither fetchd
    // nor fetchctl starts children that could inherit the pipes.)
    if (reader_.joinable()) {
      reader_.join();
    }
    info.max_rss_kib = max_rss_kib_;
    if (wait_status_.has_value()) {
      if (WIFEXITED(*wait_status_)) {
        info.exit_code = WEXITSTATUS(*wait_status_);
      }
      if (WIFSIGNALED(*wait_status_)) {
        info.term_signal = WTERMSIG(*wait_status_);
      }
    }
    info.timed_out = timed_out_;
  }
  absl::MutexLock lock(&output_mu_);
  info.stdout_text = stdout_text_;
  info.stderr_text = stderr_text_;
  return info;
}

absl::StatusOr<ExitInfo> RunSubprocess(std::vector<std::string> argv,
                                       absl::Duration timeout,
                                       std::vector<std::string> env) {
  absl::StatusOr<std::unique_ptr<Subprocess>> process =
      Subprocess::Start(std::move(argv), std::move(env));
  if (!process.ok()) {
    return process.status();
  }
  return (*process)->Wait(timeout);
}

}  // namespace fetchd::testing
