// fetchd: the fetch service binary. Loads and validates the config, starts
// the curl worker pool and the gRPC server, and drains on SIGTERM/SIGINT.
#include <curl/curl.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "service/api/fetch_service.h"
#include "service/common/clock.h"
#include "service/common/logging.h"
#include "service/common/proto_duration.h"
#include "service/config/config_overrides.h"
#include "service/config/server_config.h"
#include "service/metrics/fetch_metrics.h"
#include "service/metrics/heap_stats.h"
#include "service/metrics/metrics_server.h"
#include "service/policy/policy_config.h"
#include "service/transport/worker_pool.h"
#include "service/ws/beast_transport.h"
#include "service/ws/ws_service.h"
#include "spdlog/spdlog.h"

extern char** environ;

ABSL_FLAG(std::string, config, "",
          "JSON file with a fetch.v1.ServerConfig (protobuf JSON mapping)");
ABSL_FLAG(std::string, listen, "",
          "gRPC listen address host:port (overrides the config; port 0 picks "
          "a free port)");
ABSL_FLAG(int, workers, -1, "curl worker threads (overrides the config)");
ABSL_FLAG(int, max_in_flight, -1, "limits.max_in_flight override");
ABSL_FLAG(int, max_per_host, -1, "limits.max_per_host override");
ABSL_FLAG(int, max_batch_size, -1, "limits.max_batch_size override");
ABSL_FLAG(int, max_pending, -1, "limits.max_pending override");
ABSL_FLAG(int, stream_window, -1, "limits.stream_window override");
ABSL_FLAG(absl::Duration, default_timeout, absl::ZeroDuration(),
          "request_defaults.timeouts.total override (e.g. 15s)");
ABSL_FLAG(absl::Duration, default_connect_timeout, absl::ZeroDuration(),
          "request_defaults.timeouts.connect override");
ABSL_FLAG(int, default_max_attempts, -1,
          "request_defaults.retry.max_attempts override (1 = no retries)");
ABSL_FLAG(int, max_attempts, -1,
          "request_bounds.max_attempts override (the most a caller may ask)");
ABSL_FLAG(std::string, port_file, "",
          "after start, write the bound gRPC port to this file");
ABSL_FLAG(std::string, metrics_listen, "",
          "metrics.listen override: where /metrics is served, host:port "
          "(port 0 picks a free port)");
ABSL_FLAG(std::string, metrics_port_file, "",
          "after start, write the bound metrics port to this file");
ABSL_FLAG(std::string, policy_allow, "",
          "comma-separated CIDRs fetchd may connect to even inside the "
          "ranges its destination policy denies (replaces policy.allow)");
ABSL_FLAG(std::string, tls_cert_file, "",
          "auth.tls_cert_file override: PEM certificate chain; with "
          "--tls_key_file the gRPC endpoint serves TLS only");
ABSL_FLAG(std::string, tls_key_file, "",
          "auth.tls_key_file override: PEM private key of --tls_cert_file");
ABSL_FLAG(std::string, client_ca_file, "",
          "auth.client_ca_file override: PEM CA that client certificates "
          "must chain to");
ABSL_FLAG(bool, require_client_cert, false,
          "auth.require_client_cert override: mTLS, refuse clients without "
          "a certificate from --client_ca_file");
ABSL_FLAG(std::string, token_file, "",
          "auth.token_file override: \"NAME TOKEN\" lines; calls must then "
          "send \"authorization: Bearer TOKEN\"");
ABSL_FLAG(bool, print_config, false, "print the effective config and exit");
ABSL_FLAG(bool, check_config, false, "validate the config and exit");
ABSL_FLAG(int, drain_seconds, 10,
          "on SIGTERM, how long running calls may take before they are "
          "cancelled");
ABSL_FLAG(std::string, log_level, "",
          "log_level override: trace|debug|info|warn|error|critical|off");

namespace fetchd {
namespace {

// tcmalloc's free memory: how much the thread caches may keep, and how
// often free pages go back to the kernel.
constexpr uint64_t kThreadCacheBytes = 8 << 20;
constexpr time_t kHeapReleaseSeconds = 10;

// The flags that override the config and were given: --config and those
// of config::ConfigOverrides(), each of which must be defined above. A flag
// still at its default (-1, 0s or "": "not given") overrides nothing.
absl::StatusOr<config::ValueMap> GivenConfigFlags() {
  std::vector<absl::string_view> names = {config::kConfigFileFlag};
  for (const config::ConfigOverride& entry : config::ConfigOverrides()) {
    names.push_back(entry.name);
  }
  config::ValueMap given;
  for (absl::string_view name : names) {
    const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr) {
      return absl::InternalError(absl::StrCat("no flag --", name));
    }
    if (std::string value = flag->CurrentValue();
        value != flag->DefaultValue()) {
      given.emplace(std::string(name), std::move(value));
    }
  }
  return given;
}

// Defaults, --config file, the FETCHD_* variables of `env`, flags.
absl::StatusOr<fetch::v1::ServerConfig> BuildConfig(
    const config::ValueMap& env) {
  absl::StatusOr<config::ValueMap> flags = GivenConfigFlags();
  if (!flags.ok()) return flags.status();
  return config::BuildServerConfig({env, *std::move(flags)});
}

int Run(const config::ValueMap& env) {
  absl::StatusOr<fetch::v1::ServerConfig> config = BuildConfig(env);
  if (!config.ok()) {
    std::cerr << "fetchd: invalid config: " << config.status().message()
              << "\n";
    return 2;
  }
  if (absl::GetFlag(FLAGS_print_config)) {
    std::cout << config::ConfigToJson(*config) << "\n";
    return 0;
  }
  // Validated by BuildServerConfig(), so the level is known.
  spdlog::set_default_logger(logging::MakeJsonStdoutLogger(
      "fetchd", logging::ParseLogLevel(config->log_level())
                    .value_or(spdlog::level::info)));
  for (const std::string& name : config::UnknownFetchdVariables(env)) {
    logging::Log(spdlog::level::warn,
                 absl::StrCat("ignoring unknown environment variable ", name),
                 {{"variable", name}});
  }

  // Signals are taken by sigwait() below; block them before any thread
  // starts so that every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  if (curl_global_init(CURL_GLOBAL_ALL) != CURLE_OK) {
    spdlog::critical("curl_global_init failed");
    return 1;
  }
  metrics::FetchMetrics::Options metrics_options;
  metrics_options.host_labels.assign(config->metrics().host_labels().begin(),
                                     config->metrics().host_labels().end());
  metrics_options.access_log_sample_rate =
      config->metrics().access_log_sample_rate();
  metrics_options.version = FETCHD_VERSION;
  metrics_options.grpc_version = grpc::Version();
  metrics_options.curl_version = curl_version_info(CURLVERSION_NOW)->version;
  absl::StatusOr<std::unique_ptr<metrics::FetchMetrics>> metrics =
      metrics::FetchMetrics::Create(metrics_options);
  if (!metrics.ok()) {
    spdlog::critical("{}", metrics.status().ToString());
    return 1;
  }
  // Validated by BuildServerConfig(), so it can't fail here.
  absl::StatusOr<policy::AddressPolicy> address_policy =
      policy::AddressPolicyFromConfig(config->policy());
  if (!address_policy.ok()) {
    std::cerr << "fetchd: invalid config: " << address_policy.status().message()
              << "\n";
    return 2;
  }
  transport::WorkerPool::Options pool_options;
  pool_options.observer = metrics->get();
  pool_options.policy =
      std::make_shared<const policy::AddressPolicy>(*std::move(address_policy));
  pool_options.settings =
      transport::WorkerPool::SettingsFromConfig(config->transport());
  pool_options.max_cached_connections =
      static_cast<int>(config->transport().max_cached_connections());
  pool_options.workers = static_cast<int>(config->workers());
  pool_options.max_per_host = static_cast<int>(config->limits().max_per_host());
  pool_options.max_in_flight =
      static_cast<int>(config->limits().max_in_flight());
  absl::StatusOr<std::unique_ptr<transport::WorkerPool>> pool =
      transport::WorkerPool::Create(pool_options, RealClock::Get());
  if (!pool.ok()) {
    spdlog::critical("cannot start workers: {}", pool.status().ToString());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<api::FetchServiceImpl>> service =
      api::FetchServiceImpl::Create(*config, pool->get(), RealClock::Get(),
                                    metrics->get());
  if (!service.ok()) {
    std::cerr << "fetchd: invalid config: " << service.status().message()
              << "\n";
    return 2;
  }
  ws::WsTransport::Options ws_options;
  ws_options.address_check = [policy = pool_options.policy](
                                 const policy::IpAddress& ip, uint16_t port) {
    return policy->Check(ip, port);
  };
  ws_options.max_per_host = static_cast<int>(config->limits().max_per_host());
  ws_options.observer = metrics->get();
  absl::StatusOr<std::unique_ptr<ws::WsTransport>> ws_transport =
      ws::NewBeastTransport(std::move(ws_options));
  if (!ws_transport.ok()) {
    spdlog::critical("cannot start the WebSocket transport: {}",
                     ws_transport.status().ToString());
    return 1;
  }
  absl::StatusOr<std::unique_ptr<ws::WebSocketServiceImpl>> ws_service =
      ws::WebSocketServiceImpl::Create(
          *config,
          {&(*service)->caller_auth(), (*service)->shared_caller_quotas(),
           ws_transport->get(), metrics->get()});
  if (!ws_service.ok()) {
    std::cerr << "fetchd: invalid config: " << ws_service.status().message()
              << "\n";
    return 2;
  }
  if (absl::GetFlag(FLAGS_check_config)) {
    std::cout << "config OK\n";
    return 0;
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  const auth::CallerAuth& caller_auth = (*service)->caller_auth();
  builder.AddListeningPort(config->listen(), caller_auth.ServerCredentials(),
                           &port);
  if (!caller_auth.tls() && !config->auth().token_file().empty()) {
    spdlog::warn(
        "auth.token_file is set without TLS: bearer tokens cross the "
        "network in plaintext");
  }
  builder.RegisterService(service->get());
  builder.RegisterService(ws_service->get());
  const fetch::v1::Grpc& grpc_config = config->grpc();
  builder.SetMaxReceiveMessageSize(
      static_cast<int>(grpc_config.max_message_bytes()));
  builder.SetMaxSendMessageSize(
      static_cast<int>(grpc_config.max_message_bytes()));
  // Find dead peers so that their streams don't hold resources. Validation
  // keeps these durations within an int of milliseconds.
  const auto millis = [](const google::protobuf::Duration& d) {
    return static_cast<int>(absl::ToInt64Milliseconds(FromProto(d)));
  };
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS,
                             millis(grpc_config.keepalive_time()));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                             millis(grpc_config.keepalive_timeout()));
  if (const int age = millis(grpc_config.max_connection_age()); age > 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS, age);
  }
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    spdlog::critical("cannot listen on {}", config->listen());
    return 1;
  }
  server->GetHealthCheckService()->SetServingStatus("fetch.v1.FetchService",
                                                    true);
  server->GetHealthCheckService()->SetServingStatus("fetch.v1.WebSocketService",
                                                    true);
  const std::string host =
      config->listen().substr(0, config->listen().rfind(':'));
  const char* const security = !caller_auth.tls() ? "plaintext"
                               : config->auth().require_client_cert() ? "mtls"
                                                                      : "tls";
  logging::Log(spdlog::level::info,
               absl::StrCat("fetchd listening on ", host, ":", port, ", ",
                            config->workers(), " workers"),
               {{"address", absl::StrCat(host, ":", port)},
                {"port", port},
                {"transport_security", security},
                {"workers", config->workers()}});
  if (const std::string path = absl::GetFlag(FLAGS_port_file); !path.empty()) {
    std::ofstream(path) << port << "\n";
  }

  // Gauges read at scrape time; valid until the metrics server stops.
  (*metrics)->SetLiveSource([pool = pool->get(), service = service->get()] {
    metrics::FetchMetrics::LiveStats live;
    live.engine = pool->stats();
    live.pending = service->pending();
    live.active_calls = {service->active_calls(core::CallMethod::kFetchBatch),
                         service->active_calls(core::CallMethod::kFetch)};
    return live;
  });
  absl::StatusOr<std::unique_ptr<metrics::MetricsServer>> metrics_server =
      metrics::MetricsServer::Start(config->metrics().listen(),
                                    (*metrics)->collectable());
  if (!metrics_server.ok()) {
    spdlog::critical("{}", metrics_server.status().ToString());
    return 1;
  }
  (*metrics)->SetServing(true);
  logging::Log(spdlog::level::info,
               absl::StrCat("metrics on http://", (*metrics_server)->address(),
                            "/metrics"),
               {{"metrics_address", (*metrics_server)->address()}});
  if (const std::string path = absl::GetFlag(FLAGS_metrics_port_file);
      !path.empty()) {
    std::ofstream(path) << (*metrics_server)->port() << "\n";
  }

  // Until a signal comes, hand the allocator's free pages back to the kernel
  // now and then: a burst (a batch of large bodies) leaves free pages that
  // would otherwise stay in RSS (fetch_process_heap_bytes shows them).
  int signal_number = -1;
  while (signal_number < 0) {
    const timespec wait = {kHeapReleaseSeconds, 0};
    signal_number = sigtimedwait(&signals, nullptr, &wait);
    if (signal_number < 0) metrics::ReleaseFreeHeap();
  }
  (*metrics)->SetServing(false);
  (*service)->StartDraining();
  (*ws_service)->StartDraining();
  server->GetHealthCheckService()->SetServingStatus(false);
  // Logged once draining is in effect: tests wait for this line.
  logging::Log(spdlog::level::info,
               absl::StrCat("signal ", signal_number, ": draining for up to ",
                            absl::GetFlag(FLAGS_drain_seconds), "s"),
               {{"signal", signal_number},
                {"drain_seconds", absl::GetFlag(FLAGS_drain_seconds)}});
  // Shutdown() closes the listener and sends GOAWAY on every connection, so
  // wait for the running calls first: meanwhile health checks still get
  // NOT_SERVING and new calls UNAVAILABLE. The rest of the grace period goes
  // to Shutdown(), which then cancels what is left.
  const absl::Time drain_deadline =
      absl::Now() + absl::Seconds(absl::GetFlag(FLAGS_drain_seconds));
  const auto active = [&] {
    return (*service)->active_calls() + (*ws_service)->active_calls();
  };
  while (active() > 0 && absl::Now() < drain_deadline) {
    absl::SleepFor(absl::Milliseconds(20));
  }
  if (const int64_t left = active(); left > 0) {
    logging::Log(spdlog::level::warn,
                 absl::StrCat("drain grace period over: cancelling ", left,
                              " running calls"),
                 {{"calls", left}});
    // Their unfinished requests end as CANCELLED results, which the calls
    // still stream before they end; give that a moment.
    // Open WebSockets get a 1001 going-away close, reported to their calls.
    (*service)->CancelAllCalls();
    (*ws_service)->CloseAll();
    const absl::Time flush_deadline = absl::Now() + absl::Seconds(2);
    while (active() > 0 && absl::Now() < flush_deadline) {
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
  server->Shutdown(absl::ToChronoTime(std::max(drain_deadline, absl::Now()) +
                                      absl::Milliseconds(500)));
  (*pool)->Stop();
  // Delivers the last closes to the WebSocket calls, which use the service.
  (*ws_transport)->Stop();
  server.reset();
  // Its gauges read the service and the pool.
  metrics_server->reset();
  ws_service->reset();
  ws_transport->reset();
  service->reset();
  pool->reset();
  curl_global_cleanup();
  spdlog::info("fetchd stopped");
  return 0;
}

}  // namespace
}  // namespace fetchd

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "fetchd: gRPC HTTP fetch service.\n  fetchd [--config FILE] [--listen "
      "HOST:PORT] [--workers N] ...");
  absl::ParseCommandLine(argc, argv);
  // Debian builds abseil without NDEBUG, which leaves Mutex deadlock
  // detection on: a global graph update on every lock, measurable on the
  // request path. The tests keep it (they don't run this main).
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // tcmalloc lets its thread caches hold 32 MiB of free memory in all,
  // which a long-running fetchd fills over hours (RSS creeping without a
  // leak); a smaller cap costs no measurable throughput (BENCHMARKS.md).
  // TCMALLOC_MAX_TOTAL_THREAD_CACHE_BYTES still overrides it.
  if (std::getenv("TCMALLOC_MAX_TOTAL_THREAD_CACHE_BYTES") == nullptr) {
    fetchd::metrics::SetThreadCacheLimit(fetchd::kThreadCacheBytes);
  }
  // Still single-threaded: nothing changes the environment meanwhile.
  return fetchd::Run(fetchd::config::EnvironmentMap(environ));
}
