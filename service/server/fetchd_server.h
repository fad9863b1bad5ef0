// FetchdServer: fetchd assembled from its config, in one place. It builds
// every component once — metrics, the destination policy, caller auth, the
// call gate (admission and drain), the curl worker pool, FetchService, the
// WebSocket transport and service, health, reflection, the /metrics server
// and the gRPC server — owns them as members in dependency order, and tears
// them down by destruction order. main.cc and the tests run this same
// wiring.
//
// Start-up errors: InvalidArgument for a config that can't work (it names
// the field and the rule); FailedPrecondition for a file that can't be
// read; Unavailable for an address that can't be bound (it names the
// address; gRPC's SO_REUSEPORT is off, so a port another process holds is
// an error, not a shared port). Every listener is bound before Start()
// returns.
//
// Thread-safety: Start(), Drain() and the destructor from one thread;
// the accessors from any.
#ifndef FETCHD_SERVICE_SERVER_FETCHD_SERVER_H_
#define FETCHD_SERVICE_SERVER_FETCHD_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "fetch/v1/config.pb.h"
#include "service/api/call_env.h"
#include "service/api/call_gate.h"
#include "service/api/fetch_service.h"
#include "service/auth/caller_auth.h"
#include "service/cluster/lease_broker.h"
#include "service/cluster/lease_store.h"
#include "service/core/fetch_observer.h"
#include "service/metrics/fetch_metrics.h"
#include "service/metrics/metrics_server.h"
#include "service/policy/address_policy.h"
#include "service/policy/destination_gate.h"
#include "service/transport/worker_pool.h"
#include "service/ws/ws_service.h"
#include "service/ws/ws_transport.h"

namespace fetchd::server {

class FetchdServer {
 public:
  struct Options {
    // Told about every fetch instead of the server's own metrics (tests);
    // null: the metrics. Must outlive the server.
    core::FetchObserver* observer = nullptr;
    // Serve /metrics on config.metrics.listen.
    bool serve_metrics = true;
  };

  // Builds and starts fetchd for `config` (validated: config/server_config.h).
  // Requires curl_global_init().
  static absl::StatusOr<std::unique_ptr<FetchdServer>> Start(
      const fetch::v1::ServerConfig& config, const Options& options);
  // Builds every component of `config` without starting anything: what
  // `fetchd --check_config` reports. Same errors as Start(), but for binding.
  static absl::Status Check(const fetch::v1::ServerConfig& config);

  // Stops what Drain() has not.
  ~FetchdServer();
  FetchdServer(const FetchdServer&) = delete;
  FetchdServer& operator=(const FetchdServer&) = delete;

  // The bound gRPC port and "host:port"; the bound /metrics port (0 when
  // not served).
  int port() const { return port_; }
  std::string address() const;
  int metrics_port() const;
  std::string metrics_address() const;
  // "plaintext", "tls" or "mtls".
  const char* transport_security() const;
  // Logs the addresses served ("fetchd listening on ...", "metrics on
  // ..."): the line that says fetchd is up.
  void LogListening() const;

  // The first step of Drain(): NOT_SERVING, new calls refused. Idempotent.
  void StartDraining();
  // Graceful shutdown: NOT_SERVING, new calls refused (UNAVAILABLE), the
  // running calls get `grace` to finish — it ends as soon as the last one
  // does — then the rest are cancelled (their unfinished requests still
  // stream CANCELLED results) and everything stops. Call once.
  void Drain(absl::Duration grace);

  api::CallGate& gate() { return *gate_; }
  const api::CallStats& call_stats() const { return call_stats_; }
  transport::WorkerPool& pool() { return *pool_; }
  metrics::FetchMetrics& metrics() { return *metrics_; }

 private:
  FetchdServer() = default;
  // Everything but the listeners; `this` is not started yet.
  absl::Status Build(const fetch::v1::ServerConfig& config,
                     const Options& options);
  // With limiter mode REDIS: the store, the broker (started: it connects
  // in the background) and the workers' limiter factory in `pool_options`.
  absl::Status StartLimiter(const fetch::v1::ServerConfig& config,
                            transport::WorkerPool::Options& pool_options);
  absl::Status Listen(const fetch::v1::ServerConfig& config,
                      const Options& options);
  // Stops the gRPC server by `deadline`, then the engine and transports.
  void StopAll(absl::Time deadline);

  // Declared in dependency order: each may use those above it, and is
  // destroyed before them.
  fetch::v1::ServerConfig config_;
  std::unique_ptr<metrics::FetchMetrics> metrics_;
  std::shared_ptr<const policy::DestinationGate> destinations_;
  std::unique_ptr<auth::CallerAuth> caller_auth_;
  std::unique_ptr<api::CallGate> gate_;
  api::CallStats call_stats_;
  // Calls' deadline cuts; stopped after the pool (its callbacks cancel in
  // the pool).
  std::unique_ptr<api::DeadlineTimer> deadlines_;
  // Limiter mode REDIS: the shared state and this replica's pools of it.
  // Declared before pool_, whose workers use the broker.
  std::unique_ptr<cluster::LeaseStore> lease_store_;
  std::unique_ptr<cluster::LeaseBroker> broker_;
  std::unique_ptr<transport::WorkerPool> pool_;
  std::unique_ptr<api::FetchServiceImpl> fetch_service_;
  std::unique_ptr<ws::WsTransport> ws_transport_;
  std::unique_ptr<ws::WebSocketServiceImpl> ws_service_;
  // Reads the gate and the pool at scrape time.
  std::unique_ptr<metrics::MetricsServer> metrics_server_;
  std::unique_ptr<grpc::Server> grpc_server_;
  int port_ = 0;
  bool stopped_ = false;
};

}  // namespace fetchd::server

#endif  // FETCHD_SERVICE_SERVER_FETCHD_SERVER_H_
