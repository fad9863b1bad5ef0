#include "service/transport/worker_pool.h"

#include <utility>

#include "absl/hash/hash.h"
#include "service/common/proto_duration.h"
#include "service/transport/cookie_jar.h"

namespace fetchd::transport {

// Sends redirect hops to the worker that owns their host. `workers` is
// filled before Create() returns, and so before any job exists; workers
// read it only while handling jobs.
class WorkerPool::Router final : public JobRouter {
 public:
  CurlWorker* WorkerFor(const std::string& host_key) const override {
    return workers[absl::Hash<std::string>{}(host_key) % workers.size()];
  }
  std::vector<CurlWorker*> workers;
};

absl::StatusOr<std::unique_ptr<WorkerPool>> WorkerPool::Create(
    const Options& options, const Clock* clock) {
  const int n = std::max(1, options.workers);
  auto router = std::make_unique<Router>();
  CurlWorker::Options worker_options;
  worker_options.max_per_host = options.max_per_host;
  worker_options.politeness = options.politeness;
  worker_options.pause = options.pause;
  worker_options.make_limiter = options.make_limiter;
  worker_options.limits.max_in_flight =
      std::max(1, (options.max_in_flight + n - 1) / n);
  worker_options.observer = options.observer;
  worker_options.destinations = options.destinations.get();
  worker_options.router = router.get();
  worker_options.settings = options.settings;
  worker_options.max_cached_connections = options.max_cached_connections;
  std::vector<std::unique_ptr<CurlWorker>> workers;
  for (int i = 0; i < n; ++i) {
    worker_options.index = i;
    absl::StatusOr<std::unique_ptr<CurlWorker>> worker =
        CurlWorker::Start(worker_options, clock);
    if (!worker.ok()) return worker.status();  // Started ones stop on return.
    router->workers.push_back(worker->get());
    workers.push_back(*std::move(worker));
  }
  return std::unique_ptr<WorkerPool>(new WorkerPool(
      options.destinations, std::move(router), std::move(workers)));
}

WorkerPool::WorkerPool(
    std::shared_ptr<const policy::DestinationGate> destinations,
    std::unique_ptr<Router> router,
    std::vector<std::unique_ptr<CurlWorker>> workers)
    : destinations_(std::move(destinations)),
      router_(std::move(router)),
      workers_(std::move(workers)) {}

WorkerPool::~WorkerPool() { Stop(); }

WorkerPool::Options WorkerPool::OptionsFromConfig(
    const fetch::v1::ServerConfig& config) {
  Options options;
  options.workers = static_cast<int>(config.workers());
  options.max_per_host = static_cast<int>(config.limits().max_per_host());
  options.max_in_flight = static_cast<int>(config.limits().max_in_flight());
  options.settings = SettingsFromConfig(config.transport());
  options.max_cached_connections =
      static_cast<int>(config.transport().max_cached_connections());
  return options;
}

TransferSettings WorkerPool::SettingsFromConfig(
    const fetch::v1::Transport& config) {
  TransferSettings settings;
  settings.dns_cache_ttl = FromProto(config.dns_cache_ttl());
  settings.happy_eyeballs_delay = FromProto(config.happy_eyeballs_delay());
  settings.ip_resolve = config.ip_version() == "ipv4" ? CURL_IPRESOLVE_V4
                        : config.ip_version() == "ipv6"
                            ? CURL_IPRESOLVE_V6
                            : CURL_IPRESOLVE_WHATEVER;
  settings.idle_connection_timeout =
      FromProto(config.idle_connection_timeout());
  settings.max_connection_lifetime =
      FromProto(config.max_connection_lifetime());
  settings.proxy_url = config.proxy().url();
  settings.proxy_username = config.proxy().username();
  settings.proxy_password = config.proxy().password();
  settings.use_env_proxy = config.use_env_proxy();
  return settings;
}

size_t WorkerPool::WorkerFor(const std::string& host_key) const {
  return absl::Hash<std::string>{}(host_key) % workers_.size();
}

void WorkerPool::Submit(std::vector<std::unique_ptr<core::FetchJob>> jobs) {
  if (workers_.size() == 1) {
    workers_[0]->Submit(std::move(jobs));
    return;
  }
  std::vector<std::vector<std::unique_ptr<core::FetchJob>>> shards(
      workers_.size());
  for (auto& job : jobs) {
    shards[WorkerFor(job->host_key)].push_back(std::move(job));
  }
  for (size_t i = 0; i < shards.size(); ++i) {
    if (!shards[i].empty()) workers_[i]->Submit(std::move(shards[i]));
  }
}

void WorkerPool::CancelBatch(const std::shared_ptr<core::Batch>& batch) {
  for (auto& worker : workers_) worker->CancelBatch(batch);
}

void WorkerPool::Wake(uint64_t workers) {
  const int self = CurlWorker::CurrentIndex();
  for (size_t i = 0; i < workers_.size(); ++i) {
    if (static_cast<int>(i) != self && (workers >> (i % 64) & 1) != 0) {
      workers_[i]->Wake();
    }
  }
}

core::FetcherStats WorkerPool::stats() const {
  core::FetcherStats total;
  for (const auto& worker : workers_) {
    const core::FetcherStats s = worker->stats();
    total.in_flight += s.in_flight;
    total.queued += s.queued;
    total.delayed += s.delayed;
    if (total.politeness.empty()) {
      total.politeness = s.politeness;
      continue;
    }
    // Every worker has the same rules, in the same order.
    for (size_t i = 0; i < s.politeness.size() && i < total.politeness.size();
         ++i) {
      total.politeness[i].Add(s.politeness[i]);
    }
  }
  return total;
}

absl::StatusOr<std::shared_ptr<core::CookieStore>> WorkerPool::NewCookieStore(
    const google::protobuf::RepeatedPtrField<fetch::v1::Cookie>& initial,
    absl::string_view field) {
  absl::StatusOr<std::shared_ptr<CookieJar>> jar =
      CookieJar::Create(initial, field);
  if (!jar.ok()) return jar.status();
  return std::shared_ptr<core::CookieStore>(*std::move(jar));
}

void WorkerPool::Stop() {
  for (auto& worker : workers_) worker->Stop();
}

}  // namespace fetchd::transport
