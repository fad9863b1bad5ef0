// fetchd: the fetch service binary. Loads and validates the config, starts
// the curl worker pool and the gRPC server, and drains on SIGTERM/SIGINT.
#include <curl/curl.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "service/api/fetch_service.h"
#include "service/common/clock.h"
#include "service/common/proto_duration.h"
#include "service/config/server_config.h"
#include "service/transport/worker_pool.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

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
ABSL_FLAG(bool, print_config, false, "print the effective config and exit");
ABSL_FLAG(bool, check_config, false, "validate the config and exit");
ABSL_FLAG(int, drain_seconds, 10,
          "on SIGTERM, how long running calls may take before they are "
          "cancelled");
ABSL_FLAG(std::string, log_level, "info", "trace|debug|info|warn|error");

namespace fetchd {
namespace {

constexpr int kMaxMessageBytes = 64 << 20;

absl::StatusOr<fetch::v1::ServerConfig> BuildConfig() {
  fetch::v1::ServerConfig config = config::DefaultServerConfig();
  if (const std::string path = absl::GetFlag(FLAGS_config); !path.empty()) {
    absl::StatusOr<fetch::v1::ServerConfig> loaded =
        config::LoadConfigFile(config, path);
    if (!loaded.ok()) return loaded.status();
    config = *std::move(loaded);
  }
  if (const std::string listen = absl::GetFlag(FLAGS_listen); !listen.empty()) {
    config.set_listen(listen);
  }
  const auto override_int = [](const absl::Flag<int>& flag, auto setter) {
    if (const int value = absl::GetFlag(flag); value >= 0) {
      setter(static_cast<uint32_t>(value));
    }
  };
  auto* limits = config.mutable_limits();
  override_int(FLAGS_workers, [&](uint32_t v) { config.set_workers(v); });
  override_int(FLAGS_max_in_flight,
               [&](uint32_t v) { limits->set_max_in_flight(v); });
  override_int(FLAGS_max_per_host,
               [&](uint32_t v) { limits->set_max_per_host(v); });
  override_int(FLAGS_max_batch_size,
               [&](uint32_t v) { limits->set_max_batch_size(v); });
  override_int(FLAGS_max_pending,
               [&](uint32_t v) { limits->set_max_pending(v); });
  override_int(FLAGS_stream_window,
               [&](uint32_t v) { limits->set_stream_window(v); });
  auto* defaults = config.mutable_request_defaults();
  override_int(FLAGS_default_max_attempts, [&](uint32_t v) {
    defaults->mutable_retry()->set_max_attempts(v);
  });
  override_int(FLAGS_max_attempts, [&](uint32_t v) {
    config.mutable_request_bounds()->set_max_attempts(v);
  });
  if (const absl::Duration d = absl::GetFlag(FLAGS_default_timeout);
      d != absl::ZeroDuration()) {
    *defaults->mutable_timeouts()->mutable_total() = ToProto(d);
  }
  if (const absl::Duration d = absl::GetFlag(FLAGS_default_connect_timeout);
      d != absl::ZeroDuration()) {
    *defaults->mutable_timeouts()->mutable_connect() = ToProto(d);
  }
  config::ResolveAutoValues(&config);
  if (absl::Status s = config::ValidateServerConfig(config); !s.ok()) {
    return s;
  }
  return config;
}

int Run() {
  absl::StatusOr<fetch::v1::ServerConfig> config = BuildConfig();
  if (!config.ok()) {
    std::cerr << "fetchd: invalid config: " << config.status().message()
              << "\n";
    return 2;
  }
  if (absl::GetFlag(FLAGS_print_config)) {
    std::cout << config::ConfigToJson(*config) << "\n";
    return 0;
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
  transport::WorkerPool::Options pool_options;
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
      api::FetchServiceImpl::Create(*config, pool->get(), RealClock::Get());
  if (!service.ok()) {
    std::cerr << "fetchd: invalid config: " << service.status().message()
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
  builder.AddListeningPort(config->listen(), grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(service->get());
  builder.SetMaxReceiveMessageSize(kMaxMessageBytes);
  builder.SetMaxSendMessageSize(kMaxMessageBytes);
  // Find dead peers so that their streams don't hold resources.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    spdlog::critical("cannot listen on {}", config->listen());
    return 1;
  }
  server->GetHealthCheckService()->SetServingStatus("fetch.v1.FetchService",
                                                    true);
  const std::string host =
      config->listen().substr(0, config->listen().rfind(':'));
  spdlog::info("fetchd listening on {}:{}, {} workers", host, port,
               config->workers());
  if (const std::string path = absl::GetFlag(FLAGS_port_file); !path.empty()) {
    std::ofstream(path) << port << "\n";
  }

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  spdlog::info("signal {}: draining for up to {}s", signal_number,
               absl::GetFlag(FLAGS_drain_seconds));
  (*service)->StartDraining();
  server->GetHealthCheckService()->SetServingStatus(false);
  server->Shutdown(std::chrono::system_clock::now() +
                   std::chrono::seconds(absl::GetFlag(FLAGS_drain_seconds)));
  (*pool)->Stop();
  server.reset();
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
  spdlog::set_default_logger(spdlog::stderr_logger_mt("fetchd"));
  spdlog::set_level(spdlog::level::from_str(absl::GetFlag(FLAGS_log_level)));
  return fetchd::Run();
}
