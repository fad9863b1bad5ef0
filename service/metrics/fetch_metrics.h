// FetchMetrics: fetchd's Prometheus metrics (the names, labels and meanings
// are a contract with the dashboards and alerts: README.md, "Metrics") and
// its sampled access log. It is the core::FetchObserver of the curl workers
// and of the API layer.
//
// Every metric family is registered once, at Create(). Children with few
// label values are created there too; those of the large label products
// (fetch_requests_total, fetch_request_duration_seconds) are created on
// first use and cached by label index, so the hot path never builds a label
// map: it indexes an array and updates prometheus-cpp's atomics (a
// histogram observation also takes that histogram's own short lock).
//
// Values that are states rather than events (engine and API gauges, process
// CPU, memory and fds) are read when /metrics is scraped.
//
// Thread-safety: every method may be called from any thread.
#ifndef FETCHD_SERVICE_METRICS_FETCH_METRICS_H_
#define FETCHD_SERVICE_METRICS_FETCH_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "fetch/v1/config.pb.h"
#include "service/cluster/limiter_observer.h"
#include "service/core/fetch_observer.h"
#include "service/core/fetcher.h"
#include "service/metrics/labels.h"
#include "service/ws/ws_observer.h"

namespace prometheus {
class Collectable;
class Counter;
class Gauge;
class Histogram;
class Registry;
struct MetricFamily;
template <typename T>
class Family;
}  // namespace prometheus

namespace fetchd::metrics {

class FetchMetrics final : public core::FetchObserver,
                           public ws::WsObserver,
                           public cluster::LimiterObserver {
 public:
  struct Options {
    // Hosts that get their own `host` label value (config
    // metrics.host_labels).
    std::vector<std::string> host_labels;
    // Probability that a finished request is written to the access log.
    double access_log_sample_rate = 0;
    // Labels of fetch_build_info.
    std::string version;
    std::string grpc_version;
    std::string curl_version;
  };

  // The options `config.metrics` asks for (the version labels are left to
  // the caller).
  static Options OptionsFromConfig(const fetch::v1::Metrics& config);

  // The gauges read at scrape time.
  struct LiveStats {
    core::FetcherStats engine;
    // Requests admitted whose result has not been delivered.
    int64_t pending = 0;
    // By core::CallMethod.
    std::array<int64_t, core::kCallMethods> active_calls{};
  };
  using LiveSource = absl::AnyInvocable<LiveStats() const>;

  // Registers every family. Errors: Internal if prometheus-cpp refuses one.
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<FetchMetrics>> Create(
      const Options& options);
  ~FetchMetrics() override;
  FetchMetrics(const FetchMetrics&) = delete;
  FetchMetrics& operator=(const FetchMetrics&) = delete;

  // Where the scrape-time gauges come from; until set they read 0. The
  // source runs on the metrics server's threads and must stay valid until
  // it is replaced, or until the metrics server is stopped.
  void SetLiveSource(LiveSource source);
  // fetch_serving: 1 while serving, 0 before and while draining.
  void SetServing(bool serving);

  // Everything this object exposes, for MetricsServer. It refers to this
  // object: stop every user (the MetricsServer) before destroying it.
  std::weak_ptr<prometheus::Collectable> collectable() const;
  // The exposition in the Prometheus text format, as a scrape gets it.
  std::string Render() const;

  // core::FetchObserver.
  void OnAttemptStarted(const core::FetchJob& job,
                        absl::Duration queue_wait) override;
  void OnAttemptFinished(const core::FetchJob& job,
                         const fetch::v1::FetchResult& attempt, bool connected,
                         std::optional<core::RetryReason> retry) override;
  void OnResult(const core::FinishedRequest& request,
                const fetch::v1::FetchResult& result,
                absl::BitGenRef rng) override;
  void OnCallFinished(core::CallMethod method, absl::StatusCode code,
                      absl::Duration handling, bool rejected) override;
  void OnPolicyDenied(absl::string_view category) override;
  void OnStreamRequests(int64_t n) override;
  void OnStreamWaited(absl::Duration waited) override;

  // ws::WsObserver (fetch_websocket*).
  void OnWsMessage(bool sent, uint64_t bytes) override;
  void OnWsOpened() override;
  void OnWsClosed(int code) override;
  void OnWsHandshakeFailed(fetch::v1::ErrorKind kind) override;
  void OnWsDenied(absl::string_view category) override {
    OnPolicyDenied(category);
  }

  // cluster::LimiterObserver (fetch_limiter_*).
  void OnLimiterMode(cluster::LimiterMode mode) override;
  void OnRedisCall(cluster::RedisOperation op, int commands,
                   absl::Duration round_trip,
                   const absl::Status& status) override;
  void OnLeases(int granted, int released, int reaped, int held) override;
  void OnTokens(int reserved, int returned, int dropped) override;
  void OnLimiterStarts(int n) override;

 private:
  class Exposition;
  using Counter = prometheus::Counter;
  using Histogram = prometheus::Histogram;

  explicit FetchMetrics(const Options& options);
  // Registers the families and the fixed children; may throw (prometheus-cpp),
  // Create() catches.
  void Register(const Options& options);
  // Its parts, by what the families describe.
  void RegisterRequestFamilies(prometheus::Registry& r);
  void RegisterDenials(prometheus::Registry& r);
  void RegisterWebSocketFamilies(prometheus::Registry& r);
  void RegisterGrpcFamilies(prometheus::Registry& r);
  void RegisterLimiterFamilies(prometheus::Registry& r);
  void RegisterProcessFamilies(prometheus::Registry& r, const Options& options);
  // The cached child for these label indices, created on first use; null
  // if prometheus-cpp failed to create it.
  Counter* RequestCounter(size_t method, size_t outcome, size_t status_class,
                          size_t host);
  Histogram* DurationHistogram(size_t method, size_t outcome);
  void ObservePhases(const fetch::v1::FetchResult& attempt, bool connected);
  // All metric families: the registry's, then the ones read now.
  std::vector<prometheus::MetricFamily> Collect() const;
  void CollectLive(std::vector<prometheus::MetricFamily>* out) const;

  const HostLabels hosts_;
  const double access_log_sample_rate_;
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<Exposition> exposition_;

  // fetch_requests_total and fetch_request_duration_seconds: families, and
  // their children by label index (created lazily).
  prometheus::Family<Counter>* requests_family_ = nullptr;
  std::unique_ptr<std::atomic<Counter*>[]> requests_;
  prometheus::Family<Histogram>* duration_family_ = nullptr;
  std::unique_ptr<std::atomic<Histogram*>[]> durations_;

  Counter* request_body_bytes_ = nullptr;
  Counter* response_body_bytes_ = nullptr;
  Counter* attempts_ = nullptr;
  Counter* redirects_ = nullptr;
  std::array<Counter*, kRetryReasonLabels.size()> retries_{};
  // [0]: a new connection, [1]: a reused one.
  std::array<Counter*, 2> connections_{};
  std::array<Counter*, kRejectReasonLabels.size()> rejected_{};
  // fetch_denied_total by rule category; the last one is "other".
  std::vector<std::pair<std::string, Counter*>> denied_;
  std::array<std::array<Counter*, kGrpcCodeLabels.size()>, core::kCallMethods>
      handled_{};
  std::array<Histogram*, core::kCallMethods> handling_{};
  // FetchStream: requests read, and seconds streams waited for room.
  Counter* stream_requests_ = nullptr;
  Counter* stream_room_wait_ = nullptr;
  std::array<Histogram*, kPhaseLabels.size()> phases_{};
  prometheus::Gauge* serving_ = nullptr;
  // WebSockets: [0] sent to targets, [1] received from them.
  prometheus::Gauge* ws_open_ = nullptr;
  std::array<Counter*, 2> ws_frames_{};
  std::array<Counter*, 2> ws_bytes_{};
  // By WsCloseCodeLabel / WsHandshakeFailureLabel (fetch_metrics.cc).
  std::vector<Counter*> ws_closes_;
  std::vector<Counter*> ws_handshake_failures_;

  // The cluster limiter, by cluster::LimiterMode / RedisOperation /
  // kRedisErrorKinds (fetch_metrics.cc).
  std::array<prometheus::Gauge*, cluster::kLimiterModes> limiter_mode_{};
  std::array<Counter*, cluster::kLimiterModes> limiter_transitions_{};
  std::array<Histogram*, cluster::kRedisOperations> redis_round_trip_{};
  std::array<Counter*, cluster::kRedisOperations> redis_calls_{};
  std::vector<Counter*> redis_errors_;
  Counter* limiter_starts_ = nullptr;
  prometheus::Gauge* leases_held_ = nullptr;
  Counter* leases_granted_ = nullptr;
  Counter* leases_released_ = nullptr;
  Counter* leases_reaped_ = nullptr;
  Counter* tokens_reserved_ = nullptr;
  Counter* tokens_returned_ = nullptr;
  Counter* tokens_dropped_ = nullptr;

  mutable absl::Mutex live_mu_;
  LiveSource live_ ABSL_GUARDED_BY(live_mu_);
};

}  // namespace fetchd::metrics

#endif  // FETCHD_SERVICE_METRICS_FETCH_METRICS_H_
