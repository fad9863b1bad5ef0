// WorkerPool: the engine. N CurlWorkers; each job goes to the worker that
// owns its host (hash of scheme://host:port), so per-host limits and
// connection reuse stay inside one thread. The global in-flight limit is
// split evenly between workers.
//
// Thread-safety: every public method may be called from any thread, except
// that Submit/CancelBatch must not be called after (or during) Stop().
#ifndef FETCHD_SERVICE_TRANSPORT_WORKER_POOL_H_
#define FETCHD_SERVICE_TRANSPORT_WORKER_POOL_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "fetch/v1/config.pb.h"
#include "service/common/clock.h"
#include "service/core/fetcher.h"
#include "service/core/politeness/host_backoff.h"
#include "service/core/politeness/rule_set.h"
#include "service/transport/curl_worker.h"

namespace fetchd::transport {

class WorkerPool final : public core::Fetcher {
 public:
  struct Options {
    int workers = 1;
    // Attempts in flight per host when `politeness` is null.
    int max_per_host = 16;
    // The politeness rules every worker applies to its hosts (limits are per
    // worker: a host key is always on one worker). Null: max_per_host and
    // nothing else (see CurlWorker::Options::politeness).
    std::shared_ptr<const core::politeness::RuleSet> politeness;
    // The host-wide pause after 429/503 (with `politeness` only).
    core::politeness::HostBackoffConfig pause;
    // Each worker's limiter; empty: LocalHostLimiter (limits per replica).
    LimiterFactory make_limiter;
    // Across all workers.
    int max_in_flight = 1024;
    // Told about every attempt and result; null for none. Not owned; must
    // outlive the pool.
    core::FetchObserver* observer = nullptr;
    // The destination policy every connection must pass. Null only in
    // engine tests: no destination checks at all.
    std::shared_ptr<const policy::DestinationGate> destinations;
    // Connection settings of every transfer (config `transport`).
    TransferSettings settings;
    // Idle connections kept per worker; 0: one per in-flight transfer.
    int max_cached_connections = 0;
  };

  // The options `config` asks for (workers, limits, transport); the
  // observer and the destination gate are left to the caller.
  static Options OptionsFromConfig(const fetch::v1::ServerConfig& config);

  // The settings `config.transport` asks for.
  static TransferSettings SettingsFromConfig(
      const fetch::v1::Transport& config);

  // Starts the workers. Requires curl_global_init() to have been called.
  static absl::StatusOr<std::unique_ptr<WorkerPool>> Create(
      const Options& options, const Clock* clock);
  ~WorkerPool() override;

  void Submit(std::vector<std::unique_ptr<core::FetchJob>> jobs) override;
  void CancelBatch(const std::shared_ptr<core::Batch>& batch) override;
  void Wake(uint64_t workers) override;
  core::FetcherStats stats() const override;
  // A CookieJar.
  absl::StatusOr<std::shared_ptr<core::CookieStore>> NewCookieStore(
      const google::protobuf::RepeatedPtrField<fetch::v1::Cookie>& initial,
      absl::string_view field) override;

  // Ends every unfinished job with CANCELLED and joins the workers.
  void Stop();

 private:
  class Router;

  WorkerPool(std::shared_ptr<const policy::DestinationGate> destinations,
             std::unique_ptr<Router> router,
             std::vector<std::unique_ptr<CurlWorker>> workers);
  size_t WorkerFor(const std::string& host_key) const;

  // Declared first: they outlive the workers that use them.
  const std::shared_ptr<const policy::DestinationGate> destinations_;
  const std::unique_ptr<Router> router_;
  std::vector<std::unique_ptr<CurlWorker>> workers_;
};

}  // namespace fetchd::transport

#endif  // FETCHD_SERVICE_TRANSPORT_WORKER_POOL_H_
