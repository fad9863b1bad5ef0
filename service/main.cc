// fetchd: the fetch service binary. Flags, environment and signals; the
// server itself is assembled by server::FetchdServer.
#include <curl/curl.h>
#include <signal.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "service/common/logging.h"
#include "service/config/command_line.h"
#include "service/config/config_overrides.h"
#include "service/config/server_config.h"
#include "service/metrics/heap_stats.h"
#include "service/server/fetchd_server.h"
#include "spdlog/spdlog.h"

extern char** environ;

namespace fetchd {
namespace {

// tcmalloc: what its thread caches may keep, how often pages are released.
constexpr uint64_t kThreadCacheBytes = 8 << 20;
constexpr time_t kHeapReleaseSeconds = 10;

// Exit codes: 0 after a drain; 1 when fetchd can't start (an address in
// use, a file it can't read); 2 for an invalid config or command line.
int StartupError(const absl::Status& status) {
  if (status.code() == absl::StatusCode::kInvalidArgument) {
    std::cerr << "fetchd: invalid config: " << status.message() << "\n";
    return 2;
  }
  std::cerr << "fetchd: cannot start: " << status.message() << "\n";
  return 1;
}

void WritePortFile(const std::string& path, int port) {
  if (!path.empty()) std::ofstream(path) << port << "\n";
}

// Until SIGTERM or SIGINT (blocked in every thread), hands the allocator's
// free pages back to the kernel now and then: a burst (a batch of large
// bodies) leaves free pages that would otherwise stay in RSS
// (fetch_process_heap_bytes shows them).
int AwaitSignal(const sigset_t& signals) {
  int signal_number = -1;
  while (signal_number < 0) {
    const timespec wait = {kHeapReleaseSeconds, 0};
    signal_number = sigtimedwait(&signals, nullptr, &wait);
    if (signal_number < 0) metrics::ReleaseFreeHeap();
  }
  return signal_number;
}

int Run(const config::ValueMap& env) {
  absl::StatusOr<fetch::v1::ServerConfig> config =
      config::ConfigFromCommandLine(env);
  if (!config.ok()) return StartupError(config.status());
  if (absl::GetFlag(FLAGS_print_config)) {
    std::cout << config::ConfigToJson(*config) << "\n";
    return 0;
  }
  spdlog::set_default_logger(logging::MakeJsonStdoutLogger(
      "fetchd", logging::ParseLogLevel(config->log_level())
                    .value_or(spdlog::level::info)));
  for (const std::string& name : config::UnknownFetchdVariables(env)) {
    logging::Log(spdlog::level::warn,
                 absl::StrCat("ignoring unknown environment variable ", name),
                 {{"variable", name}});
  }
  // Taken by sigtimedwait() below; blocked before any thread starts so that
  // every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK) {
    return StartupError(absl::InternalError("curl_global_init failed"));
  }
  if (absl::GetFlag(FLAGS_check_config)) {
    if (absl::Status s = server::FetchdServer::Check(*config); !s.ok()) {
      return StartupError(config::WithCommandLineSource(s, env));
    }
    std::cout << "config OK\n";
    return 0;
  }
  absl::StatusOr<std::unique_ptr<server::FetchdServer>> fetchd =
      server::FetchdServer::Start(*config, {});
  if (!fetchd.ok()) {
    return StartupError(config::WithCommandLineSource(fetchd.status(), env));
  }
  server::FetchdServer& server = **fetchd;
  server.LogListening();
  // The gRPC port file last: once it exists, so does the metrics one.
  WritePortFile(absl::GetFlag(FLAGS_metrics_port_file), server.metrics_port());
  WritePortFile(absl::GetFlag(FLAGS_port_file), server.port());

  const int signal_number = AwaitSignal(signals);
  server.StartDraining();
  // Logged once draining is in effect: tests wait for this line.
  const int drain_seconds = absl::GetFlag(FLAGS_drain_seconds);
  logging::Log(spdlog::level::info,
               absl::StrCat("signal ", signal_number, ": draining for up to ",
                            drain_seconds, "s"),
               {{"signal", signal_number}, {"drain_seconds", drain_seconds}});
  server.Drain(absl::Seconds(drain_seconds));
  fetchd->reset();
  curl_global_cleanup();
  spdlog::info("fetchd stopped");
  return 0;
}

}  // namespace
}  // namespace fetchd

int main(int argc, char** argv) {
  if (const fetchd::config::CommandLine command_line =
          fetchd::config::ParseFetchdCommandLine(argc, argv);
      command_line.exit_code >= 0) {
    return command_line.exit_code;
  }
  // Debian's abseil keeps Mutex deadlock detection on (no NDEBUG): a global
  // graph update on every lock. The tests keep it (they don't run main).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // tcmalloc's thread caches may otherwise hold 32 MiB of free memory (RSS
  // creeping over hours); TCMALLOC_MAX_TOTAL_THREAD_CACHE_BYTES overrides.
  if (std::getenv("TCMALLOC_MAX_TOTAL_THREAD_CACHE_BYTES") == nullptr) {
    fetchd::metrics::SetThreadCacheLimit(fetchd::kThreadCacheBytes);
  }
  // Still single-threaded: nothing changes the environment meanwhile.
  return fetchd::Run(fetchd::config::EnvironmentMap(environ));
}
