#include "service/server/fetchd_server.h"

#include <curl/curl.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "fetchd/version.h"
#include "service/cluster/cluster_host_limiter.h"
#include "service/cluster/lease_broker.h"
#include "service/cluster/redis_lease_store.h"
#include "service/common/clock.h"
#include "service/common/logging.h"
#include "service/common/proto_duration.h"
#include "service/common/status_macros.h"
#include "service/config/limiter_config.h"
#include "service/config/politeness_config.h"
#include "service/policy/policy_config.h"
#include "service/ws/beast_transport.h"
#include "spdlog/spdlog.h"

namespace fetchd::server {
namespace {

constexpr const char* kServices[] = {"fetch.v1.FetchService",
                                     "fetch.v1.WebSocketService"};

// After the grace period, how long cancelled calls get to stream their
// CANCELLED results before gRPC cuts them off.
constexpr absl::Duration kCancelFlush = absl::Seconds(2);

int Millis(const google::protobuf::Duration& d) {
  // Validation keeps these durations within an int of milliseconds.
  return static_cast<int>(absl::ToInt64Milliseconds(FromProto(d)));
}

}  // namespace

absl::Status FetchdServer::Build(const fetch::v1::ServerConfig& config,
                                 const Options& options) {
  config_ = config;
  metrics::FetchMetrics::Options metrics_options =
      metrics::FetchMetrics::OptionsFromConfig(config.metrics());
  metrics_options.version = kFetchdVersion;
  metrics_options.grpc_version = grpc::Version();
  metrics_options.curl_version = curl_version_info(CURLVERSION_NOW)->version;
  FETCHD_ASSIGN_OR_RETURN(metrics_,
                          metrics::FetchMetrics::Create(metrics_options));
  core::FetchObserver* const observer =
      options.observer != nullptr ? options.observer : metrics_.get();

  FETCHD_ASSIGN_OR_RETURN(destinations_,
                          policy::DestinationGateFromConfig(config.policy()));

  FETCHD_ASSIGN_OR_RETURN(caller_auth_, auth::CallerAuth::Load(config.auth()));
  gate_ = std::make_unique<api::CallGate>(
      api::CallGate::OptionsFromConfig(config, caller_auth_.get()));

  transport::WorkerPool::Options pool_options =
      transport::WorkerPool::OptionsFromConfig(config);
  pool_options.observer = observer;
  pool_options.destinations = destinations_;
  FETCHD_ASSIGN_OR_RETURN(pool_options.politeness,
                          config::PolitenessRules(config));
  FETCHD_ASSIGN_OR_RETURN(pool_options.pause, config::PolitenessPause(config));
  FETCHD_RETURN_IF_ERROR(StartLimiter(config, pool_options));
  FETCHD_ASSIGN_OR_RETURN(
      pool_, transport::WorkerPool::Create(pool_options, RealClock::Get()));

  deadlines_ = std::make_unique<api::DeadlineTimer>();
  api::FetchServiceImpl::Options service_options;
  service_options.gate = gate_.get();
  service_options.destinations = destinations_.get();
  service_options.env.fetcher = pool_.get();
  service_options.env.deadlines = deadlines_.get();
  service_options.env.deadline_margin =
      FromProto(config.limits().deadline_margin());
  service_options.env.clock = RealClock::Get();
  service_options.env.observer = observer;
  service_options.env.stats = &call_stats_;
  FETCHD_ASSIGN_OR_RETURN(
      fetch_service_, api::FetchServiceImpl::Create(config, service_options));

  ws::WsTransport::Options ws_options;
  ws_options.address_check = [gate = destinations_](const policy::IpAddress& ip,
                                                    uint16_t port) {
    return gate->CheckAddress(ip, port);
  };
  ws_options.max_per_host = static_cast<int>(config.limits().max_per_host());
  ws_options.observer = metrics_.get();
  FETCHD_ASSIGN_OR_RETURN(ws_transport_,
                          ws::NewBeastTransport(std::move(ws_options)));
  FETCHD_ASSIGN_OR_RETURN(ws_service_,
                          ws::WebSocketServiceImpl::Create(
                              config, {gate_.get(), destinations_.get(),
                                       ws_transport_.get(), metrics_.get()}));

  // Gauges read at scrape time; valid until the metrics server stops.
  metrics_->SetLiveSource([pool = pool_.get(), gate = gate_.get()] {
    metrics::FetchMetrics::LiveStats live;
    live.engine = pool->stats();
    live.pending = gate->pending();
    live.active_calls = {gate->active_calls(api::CallKind::kFetchBatch),
                         gate->active_calls(api::CallKind::kFetch),
                         gate->active_calls(api::CallKind::kFetchStream)};
    return live;
  });
  return absl::OkStatus();
}

absl::Status FetchdServer::StartLimiter(
    const fetch::v1::ServerConfig& config,
    transport::WorkerPool::Options& pool_options) {
  FETCHD_ASSIGN_OR_RETURN(std::optional<cluster::LimiterOptions> limiter,
                          config::LimiterFromConfig(config));
  if (!limiter.has_value()) {
    metrics_->OnLimiterMode(cluster::LimiterMode::kLocal);
    return absl::OkStatus();
  }
  FETCHD_ASSIGN_OR_RETURN(limiter->password, config::ReadRedisPassword(config));
  lease_store_ = std::make_unique<cluster::RedisLeaseStore>(*limiter);
  broker_ = std::make_unique<cluster::LeaseBroker>(
      *limiter, lease_store_.get(), RealClock::Get(), metrics_.get());
  broker_->Start();
  pool_options.make_limiter =
      [broker = broker_.get()](
          std::shared_ptr<const core::politeness::RuleSet> rules,
          const core::politeness::LocalHostLimiter::Options& options,
          std::function<void()> wake)
      -> std::unique_ptr<core::politeness::HostLimiter> {
    return std::make_unique<cluster::ClusterHostLimiter>(
        std::move(rules), options, broker, std::move(wake));
  };
  spdlog::info("per-host limits shared through redis {} as replica \"{}\"",
               limiter->redis.unix_path.empty()
                   ? absl::StrCat(limiter->redis.host, ":", limiter->redis.port)
                   : absl::StrCat("unix:", limiter->redis.unix_path),
               limiter->replica_id);
  return absl::OkStatus();
}

absl::Status FetchdServer::Listen(const fetch::v1::ServerConfig& config,
                                  const Options& options) {
  if (options.serve_metrics) {
    FETCHD_ASSIGN_OR_RETURN(metrics_server_, metrics::MetricsServer::Start(
                                                 config.metrics().listen(),
                                                 metrics_->collectable()));
  }

  if (!caller_auth_->tls() && !config.auth().token_file().empty()) {
    spdlog::warn(
        "auth.token_file is set without TLS: bearer tokens cross the "
        "network in plaintext");
  }
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config.listen(), caller_auth_->ServerCredentials(),
                           &port_);
  builder.RegisterService(fetch_service_.get());
  builder.RegisterService(ws_service_.get());
  const fetch::v1::Grpc& grpc_config = config.grpc();
  builder.SetMaxReceiveMessageSize(
      static_cast<int>(grpc_config.max_message_bytes()));
  builder.SetMaxSendMessageSize(
      static_cast<int>(grpc_config.max_message_bytes()));
  // One process per port: with SO_REUSEPORT (gRPC's default) a second
  // fetchd on the same port would silently take half of the calls.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Find dead peers so that their streams don't hold resources.
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS,
                             Millis(grpc_config.keepalive_time()));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS,
                             Millis(grpc_config.keepalive_timeout()));
  if (const int age = Millis(grpc_config.max_connection_age()); age > 0) {
    builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_AGE_MS, age);
  }
  grpc_server_ = builder.BuildAndStart();
  if (grpc_server_ == nullptr || port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", config.listen(),
                     " (listen): the address is in use or not local"));
  }
  for (const char* service : kServices) {
    grpc_server_->GetHealthCheckService()->SetServingStatus(service, true);
  }
  metrics_->SetServing(true);
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<FetchdServer>> FetchdServer::Start(
    const fetch::v1::ServerConfig& config, const Options& options) {
  std::unique_ptr<FetchdServer> server(new FetchdServer());
  FETCHD_RETURN_IF_ERROR(server->Build(config, options));
  FETCHD_RETURN_IF_ERROR(server->Listen(config, options));
  return server;
}

absl::Status FetchdServer::Check(const fetch::v1::ServerConfig& config) {
  FetchdServer server;
  return server.Build(config, Options());
}

FetchdServer::~FetchdServer() { StopAll(absl::Now()); }

std::string FetchdServer::address() const {
  const std::string& listen = config_.listen();
  return absl::StrCat(listen.substr(0, listen.rfind(':')), ":", port_);
}

int FetchdServer::metrics_port() const {
  return metrics_server_ != nullptr ? metrics_server_->port() : 0;
}

std::string FetchdServer::metrics_address() const {
  return metrics_server_ != nullptr ? metrics_server_->address() : "";
}

const char* FetchdServer::transport_security() const {
  if (!caller_auth_->tls()) return "plaintext";
  return config_.auth().require_client_cert() ? "mtls" : "tls";
}

void FetchdServer::LogListening() const {
  logging::Log(spdlog::level::info,
               absl::StrCat("fetchd listening on ", address(), ", ",
                            config_.workers(), " workers"),
               {{"address", address()},
                {"port", port()},
                {"transport_security", transport_security()},
                {"workers", config_.workers()}});
  logging::Log(
      spdlog::level::info,
      absl::StrCat("metrics on http://", metrics_address(), "/metrics"),
      {{"metrics_address", metrics_address()}});
}

void FetchdServer::StartDraining() {
  if (stopped_ || gate_->draining()) return;
  metrics_->SetServing(false);
  gate_->StartDraining();
  grpc_server_->GetHealthCheckService()->SetServingStatus(false);
}

void FetchdServer::Drain(absl::Duration grace) {
  if (stopped_) return;
  StartDraining();
  // The listener stays open meanwhile: health checks see NOT_SERVING and
  // new calls UNAVAILABLE until the running ones are done.
  if (!gate_->WaitIdle(absl::Now() + grace)) {
    const int64_t left = gate_->active_calls();
    logging::Log(spdlog::level::warn,
                 absl::StrCat("drain grace period over: cancelling ", left,
                              " running calls"),
                 {{"calls", left}});
    // Their unfinished requests end as CANCELLED results, which the calls
    // still stream before they end; open WebSockets get a 1001 close.
    gate_->CancelAll();
    gate_->WaitIdle(absl::Now() + kCancelFlush);
  }
  StopAll(absl::Now());
}

void FetchdServer::StopAll(absl::Time deadline) {
  if (stopped_) return;
  stopped_ = true;
  // No admitted call is left (or they were given up on): Shutdown() cancels
  // what remains at `deadline` (health watches, calls refused meanwhile).
  if (grpc_server_ != nullptr) {
    grpc_server_->Shutdown(absl::ToChronoTime(deadline));
  }
  // No deadline cut may reach the pool once it stops.
  if (deadlines_ != nullptr) deadlines_->Stop();
  if (pool_ != nullptr) pool_->Stop();
  // Gives this replica's leases and send times back to the cluster.
  if (broker_ != nullptr) broker_->Stop();
  // Delivers the last closes to the WebSocket calls, which use the service.
  if (ws_transport_ != nullptr) ws_transport_->Stop();
}

}  // namespace fetchd::server
