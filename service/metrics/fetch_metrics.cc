#include "service/metrics/fetch_metrics.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <utility>

#include "absl/random/distributions.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "prometheus/histogram.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"
#include "prometheus/text_serializer.h"
#include "service/common/proto_duration.h"
#include "service/metrics/access_log.h"
#include "service/metrics/heap_stats.h"
#include "service/metrics/process_stats.h"
#include "service/policy/address_policy.h"
#include "spdlog/spdlog.h"

namespace fetchd::metrics {
namespace {

using prometheus::ClientMetric;
using prometheus::Counter;
using prometheus::Histogram;
using prometheus::MetricFamily;
using prometheus::MetricType;

// Seconds; the same for every histogram (README.md, "Metrics").
const Histogram::BucketBoundaries& Buckets() {
  static const auto* buckets = new Histogram::BucketBoundaries{
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
      0.5,   1,      2.5,   5,    10,    30,   60};
  return *buckets;
}

double Seconds(absl::Duration d) {
  return std::max(0.0, absl::ToDoubleSeconds(d));
}

double Seconds(const google::protobuf::Duration& d) {
  return Seconds(FromProto(d));
}

std::string Str(absl::string_view s) { return std::string(s); }

// cluster::RedisErrorKind's labels; "other" last.
constexpr std::array<const char*, 5> kRedisErrorKinds = {
    "timeout", "connection", "protocol", "reply", "other"};

// A family registered in `r`; prometheus-cpp throws if it can't.
prometheus::Family<Counter>& CounterFamily(prometheus::Registry& r,
                                           const std::string& name,
                                           const std::string& help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(r);
}
prometheus::Family<Histogram>& HistogramFamily(prometheus::Registry& r,
                                               const std::string& name,
                                               const std::string& help) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(r);
}
prometheus::Family<prometheus::Gauge>& GaugeFamily(prometheus::Registry& r,
                                                   const std::string& name,
                                                   const std::string& help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(r);
}

// The child of `family` in `slot`, created with `labels()` on first use.
// Racing creators get the same child (Family::Add returns an existing one).
template <typename T, typename MakeLabels, typename... Args>
T* CachedChild(std::atomic<T*>& slot, prometheus::Family<T>& family,
               MakeLabels labels, const Args&... args) {
  T* child = slot.load(std::memory_order_acquire);
  if (child != nullptr) return child;
  try {
    child = &family.Add(labels(), args...);
  } catch (const std::exception& e) {
    spdlog::error("metrics: cannot create a child of {}: {}", family.GetName(),
                  e.what());
    return nullptr;
  }
  slot.store(child, std::memory_order_release);
  return child;
}

MetricFamily OneValue(std::string name, std::string help, MetricType type,
                      double value) {
  MetricFamily family{std::move(name), std::move(help), type, {}};
  ClientMetric metric;
  if (type == MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  family.metric.push_back(std::move(metric));
  return family;
}

// A gauge family with one label, a sample per (label value, value).
MetricFamily GaugeByLabel(
    std::string name, std::string help, const std::string& label,
    const std::vector<std::pair<std::string, double>>& values) {
  MetricFamily family{std::move(name), std::move(help), MetricType::Gauge, {}};
  for (const auto& [label_value, value] : values) {
    ClientMetric metric;
    metric.label.push_back({label, label_value});
    metric.gauge.value = value;
    family.metric.push_back(std::move(metric));
  }
  return family;
}

// The politeness families (README.md, "Metrics"): a sample per rule that
// has seen a host (the default rule always), labelled by rule name.
void AppendPoliteness(const std::vector<core::politeness::RuleStats>& rules,
                      std::vector<MetricFamily>* out) {
  using Stats = core::politeness::RuleStats;
  const auto shown = [&](size_t i) {
    const Stats& s = rules[i];
    return i + 1 == rules.size() || s.hosts > 0 ||
           s.rate_limited_requests + s.paused_requests + s.backoffs_started +
                   s.breaker_opened + s.retries_denied >
               0;
  };
  // Adds to `f` the `field` of each shown rule (with adaptive concurrency
  // on, if `adaptive_only`), labelled `rule` and then `extra` when given.
  const auto add = [&](MetricFamily& f, auto field,
                       std::optional<ClientMetric::Label> extra = std::nullopt,
                       bool adaptive_only = false) {
    for (size_t i = 0; i < rules.size(); ++i) {
      if (!shown(i) || (adaptive_only && !rules[i].adaptive)) continue;
      ClientMetric metric;
      metric.label.push_back({"rule", rules[i].rule});
      if (extra.has_value()) metric.label.push_back(*extra);
      const double value = static_cast<double>(rules[i].*field);
      if (f.type == MetricType::Counter) {
        metric.counter.value = value;
      } else {
        metric.gauge.value = value;
      }
      f.metric.push_back(std::move(metric));
    }
  };
  const auto family = [&](std::string name, std::string help, MetricType type,
                          auto field) {
    MetricFamily f{std::move(name), std::move(help), type, {}};
    add(f, field);
    return f;
  };
  out->push_back(family(
      "fetch_politeness_rate_limited_requests_total",
      "Requests that waited for their host's rate or least delay, by rule",
      MetricType::Counter, &Stats::rate_limited_requests));
  out->push_back(family(
      "fetch_politeness_paused_requests_total",
      "Requests that waited for a host-wide pause after 429/503, by rule",
      MetricType::Counter, &Stats::paused_requests));
  out->push_back(family("fetch_politeness_pauses_total",
                        "Host-wide pauses started after 429/503, by rule",
                        MetricType::Counter, &Stats::backoffs_started));
  out->push_back(family("fetch_politeness_paused_hosts",
                        "Host keys paused now, by rule", MetricType::Gauge,
                        &Stats::hosts_paused));
  MetricFamily breakers{
      "fetch_circuit_breaker_hosts",
      "Host keys whose circuit breaker is open or half-open, by rule",
      MetricType::Gauge,
      {}};
  add(breakers, &Stats::breakers_open, ClientMetric::Label{"state", "open"});
  add(breakers, &Stats::breakers_half_open,
      ClientMetric::Label{"state", "half_open"});
  out->push_back(std::move(breakers));
  MetricFamily transitions{
      "fetch_circuit_breaker_transitions_total",
      "Circuit breaker state changes, by rule and the state entered",
      MetricType::Counter,
      {}};
  add(transitions, &Stats::breaker_opened, ClientMetric::Label{"to", "open"});
  add(transitions, &Stats::breaker_half_opened,
      ClientMetric::Label{"to", "half_open"});
  add(transitions, &Stats::breaker_closed, ClientMetric::Label{"to", "closed"});
  out->push_back(std::move(transitions));
  out->push_back(family(
      "fetch_retries_denied_total",
      "Retries not made because the host's retry budget was spent, by rule",
      MetricType::Counter, &Stats::retries_denied));
  MetricFamily adaptive{"fetch_adaptive_concurrency_limit",
                        "Lowest current adaptive concurrency limit among the "
                        "rule's hosts (rules with adaptive on)",
                        MetricType::Gauge,
                        {}};
  add(adaptive, &Stats::adaptive_limit_min, std::nullopt,
      /*adaptive_only=*/true);
  out->push_back(std::move(adaptive));
}

// fetch_websocket_closes_total's `code` values: the codes of RFC 6455 by
// number, application codes by range, anything else "other".
constexpr std::array<absl::string_view, 17> kWsCloseCodes = {
    "1000", "1001", "1002", "1003", "1005", "1006", "1007", "1008", "1009",
    "1010", "1011", "1012", "1013", "1014", "1015", "3xxx", "4xxx"};

size_t WsCloseCodeLabel(int code) {
  if (code >= 3000 && code <= 3999) return 15;
  if (code >= 4000 && code <= 4999) return 16;
  const std::string text = std::to_string(code);
  for (size_t i = 0; i < 15; ++i) {
    if (kWsCloseCodes[i] == text) return i;
  }
  return kWsCloseCodes.size();  // "other"
}

// fetch_websocket_handshake_failures_total's `kind` values.
constexpr std::array<std::pair<fetch::v1::ErrorKind, absl::string_view>, 10>
    kWsFailureKinds = {{
        {fetch::v1::ERROR_KIND_DENIED, "denied"},
        {fetch::v1::ERROR_KIND_DNS, "dns"},
        {fetch::v1::ERROR_KIND_CONNECT, "connect"},
        {fetch::v1::ERROR_KIND_TLS, "tls"},
        {fetch::v1::ERROR_KIND_CONNECT_TIMEOUT, "timeout"},
        {fetch::v1::ERROR_KIND_QUEUE_TIMEOUT, "queue_timeout"},
        {fetch::v1::ERROR_KIND_HTTP_STATUS, "http_status"},
        {fetch::v1::ERROR_KIND_PROTOCOL, "protocol"},
        {fetch::v1::ERROR_KIND_CANCELLED, "cancelled"},
        {fetch::v1::ERROR_KIND_INTERNAL, "internal"},
    }};

}  // namespace

// What the metrics server collects: the registry, then the values read at
// scrape time.
class FetchMetrics::Exposition final : public prometheus::Collectable {
 public:
  explicit Exposition(const FetchMetrics* metrics) : metrics_(metrics) {}
  std::vector<MetricFamily> Collect() const override {
    return metrics_->Collect();
  }

 private:
  const FetchMetrics* const metrics_;
};

FetchMetrics::Options FetchMetrics::OptionsFromConfig(
    const fetch::v1::Metrics& config) {
  Options options;
  options.host_labels.assign(config.host_labels().begin(),
                             config.host_labels().end());
  options.access_log_sample_rate = config.access_log_sample_rate();
  return options;
}

absl::StatusOr<std::unique_ptr<FetchMetrics>> FetchMetrics::Create(
    const Options& options) {
  std::unique_ptr<FetchMetrics> metrics(new FetchMetrics(options));
  try {
    metrics->Register(options);
  } catch (const std::exception& e) {
    return absl::InternalError(
        absl::StrCat("cannot register the metrics: ", e.what()));
  }
  return metrics;
}

FetchMetrics::FetchMetrics(const Options& options)
    : hosts_(options.host_labels),
      access_log_sample_rate_(options.access_log_sample_rate),
      exposition_(std::make_shared<Exposition>(this)) {}

FetchMetrics::~FetchMetrics() = default;

std::weak_ptr<prometheus::Collectable> FetchMetrics::collectable() const {
  return exposition_;
}

void FetchMetrics::Register(const Options& options) {
  registry_ = std::make_shared<prometheus::Registry>(
      prometheus::Registry::InsertBehavior::Throw);
  RegisterRequestFamilies(*registry_);
  RegisterDenials(*registry_);
  RegisterWebSocketFamilies(*registry_);
  RegisterGrpcFamilies(*registry_);
  RegisterLimiterFamilies(*registry_);
  RegisterProcessFamilies(*registry_, options);
}

void FetchMetrics::RegisterRequestFamilies(prometheus::Registry& r) {
  requests_family_ = &CounterFamily(
      r, "fetch_requests_total",
      "Requests finished, by method, outcome (ok or the error kind), class of "
      "the last HTTP status and target host");
  requests_ = std::make_unique<std::atomic<Counter*>[]>(
      kMethodLabels.size() * kOutcomes * kStatusClassLabels.size() *
      hosts_.size());
  duration_family_ = &HistogramFamily(
      r, "fetch_request_duration_seconds",
      "Time from admission to the final result of a request, queue waits and "
      "retries included");
  durations_ = std::make_unique<std::atomic<Histogram*>[]>(
      kMethodLabels.size() * kOutcomes);

  request_body_bytes_ =
      &CounterFamily(r, "fetch_request_body_bytes_total",
                     "Bytes sent as request bodies, all attempts")
           .Add({});
  response_body_bytes_ =
      &CounterFamily(r, "fetch_response_body_bytes_total",
                     "Decoded response body bytes received, all attempts")
           .Add({});
  attempts_ =
      &CounterFamily(r, "fetch_attempts_total", "Attempts started in curl")
           .Add({});
  redirects_ =
      &CounterFamily(r, "fetch_redirects_total", "Redirect hops followed")
           .Add({});

  auto& retries = CounterFamily(r, "fetch_retries_total",
                                "Attempts that will be retried, by reason: "
                                "error kind, HTTP status, or status with "
                                "Retry-After");
  for (size_t i = 0; i < retries_.size(); ++i) {
    retries_[i] = &retries.Add({{"reason", Str(kRetryReasonLabels[i])}});
  }
  auto& connections = CounterFamily(
      r, "fetch_connections_total",
      "Finished attempts that had a connection, by whether it was reused");
  connections_[0] = &connections.Add({{"reused", "false"}});
  connections_[1] = &connections.Add({{"reused", "true"}});

  auto& phases = HistogramFamily(
      r, "fetch_phase_duration_seconds",
      "Time spent in each phase of an attempt: waiting for a slot, DNS, TCP "
      "connect, TLS handshake, waiting for the first byte, transfer");
  for (size_t i = 0; i < phases_.size(); ++i) {
    phases_[i] = &phases.Add({{"phase", Str(kPhaseLabels[i])}}, Buckets());
  }
}

void FetchMetrics::RegisterDenials(prometheus::Registry& r) {
  auto& rejected = CounterFamily(r, "fetch_rejected_calls_total",
                                 "Calls refused before admission, by reason");
  for (size_t i = 0; i < rejected_.size(); ++i) {
    rejected_[i] = &rejected.Add({{"reason", Str(kRejectReasonLabels[i])}});
  }
  auto& denied = CounterFamily(
      r, "fetch_denied_total",
      "Requests refused by the destination policy, by the category of the "
      "rule (loopback, private, link-local, deny, host, scheme, ...)");
  std::vector<std::string> categories;
  for (absl::string_view c : policy::AddressPolicy::DenialCategories()) {
    categories.emplace_back(c);
  }
  for (const char* c : {"scheme", "caller", "proxy", "other"}) {
    categories.push_back(c);
  }
  for (std::string& c : categories) {
    Counter* child = &denied.Add({{"rule", c}});
    denied_.emplace_back(std::move(c), child);
  }
}

void FetchMetrics::RegisterWebSocketFamilies(prometheus::Registry& r) {
  ws_open_ = &GaugeFamily(r, "fetch_websockets_open",
                          "WebSockets whose handshake succeeded, not closed "
                          "yet")
                  .Add({});
  auto& ws_frames = CounterFamily(
      r, "fetch_websocket_frames_total",
      "WebSocket data messages (fragments reassembled) by direction: sent to "
      "targets or received from them");
  auto& ws_bytes = CounterFamily(r, "fetch_websocket_bytes_total",
                                 "WebSocket message payload bytes by "
                                 "direction");
  for (size_t i = 0; i < 2; ++i) {
    const std::string direction = i == 0 ? "sent" : "received";
    ws_frames_[i] = &ws_frames.Add({{"direction", direction}});
    ws_bytes_[i] = &ws_bytes.Add({{"direction", direction}});
  }
  auto& ws_closes = CounterFamily(
      r, "fetch_websocket_closes_total",
      "Open WebSockets that ended, by close code (1006: without a close "
      "frame)");
  for (absl::string_view code : kWsCloseCodes) {
    ws_closes_.push_back(&ws_closes.Add({{"code", Str(code)}}));
  }
  ws_closes_.push_back(&ws_closes.Add({{"code", "other"}}));
  auto& ws_failures =
      CounterFamily(r, "fetch_websocket_handshake_failures_total",
                    "WebSocket openings that failed, by kind");
  for (const auto& [kind, label] : kWsFailureKinds) {
    ws_handshake_failures_.push_back(&ws_failures.Add({{"kind", Str(label)}}));
  }
  ws_handshake_failures_.push_back(&ws_failures.Add({{"kind", "other"}}));
}

void FetchMetrics::RegisterLimiterFamilies(prometheus::Registry& r) {
  auto& mode = GaugeFamily(
      r, "fetch_limiter_mode",
      "1 for the per-host limiter's current mode (local, redis, degraded, "
      "learning), 0 for the others");
  auto& transitions = CounterFamily(r, "fetch_limiter_mode_transitions_total",
                                    "Changes of the limiter mode, by the mode "
                                    "entered");
  for (int i = 0; i < cluster::kLimiterModes; ++i) {
    const std::string name =
        cluster::LimiterModeName(static_cast<cluster::LimiterMode>(i));
    limiter_mode_[i] = &mode.Add({{"mode", name}});
    limiter_transitions_[i] = &transitions.Add({{"mode", name}});
  }
  auto& round_trip = HistogramFamily(
      r, "fetch_limiter_redis_round_trip_seconds",
      "Round trips of the cluster limiter to Redis, by operation (a sync "
      "round is one pipelined round trip)");
  auto& calls =
      CounterFamily(r, "fetch_limiter_redis_calls_total",
                    "Redis commands sent by the cluster limiter, by operation");
  static const auto* kRoundTripBuckets = new Histogram::BucketBoundaries{
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
      0.025,  0.05,    0.1,    0.25,  0.5,    1};
  for (int i = 0; i < cluster::kRedisOperations; ++i) {
    const std::string name =
        cluster::RedisOperationName(static_cast<cluster::RedisOperation>(i));
    redis_round_trip_[i] =
        &round_trip.Add({{"operation", name}}, *kRoundTripBuckets);
    redis_calls_[i] = &calls.Add({{"operation", name}});
  }
  auto& errors = CounterFamily(
      r, "fetch_limiter_redis_errors_total",
      "Failed Redis round trips of the cluster limiter, by kind: timeout, "
      "connection, protocol, reply (an error reply), other");
  for (const char* kind : kRedisErrorKinds) {
    redis_errors_.push_back(&errors.Add({{"kind", kind}}));
  }
  limiter_starts_ =
      &CounterFamily(r, "fetch_limiter_starts_total",
                     "Attempts started through the cluster limiter (divide "
                     "fetch_limiter_redis_calls_total by it for Redis calls "
                     "per request)")
           .Add({});
  leases_held_ = &GaugeFamily(r, "fetch_limiter_leases_held",
                              "Concurrency leases this replica holds in Redis")
                      .Add({});
  leases_granted_ = &CounterFamily(r, "fetch_limiter_leases_granted_total",
                                   "Concurrency leases granted to this replica")
                         .Add({});
  leases_released_ =
      &CounterFamily(r, "fetch_limiter_leases_released_total",
                     "Concurrency leases this replica gave back (idle, over "
                     "its fair share, or at shutdown)")
           .Add({});
  leases_reaped_ = &CounterFamily(r, "fetch_limiter_leases_reaped_total",
                                  "Expired leases (of any replica) this "
                                  "replica's syncs removed from Redis")
                        .Add({});
  tokens_reserved_ = &CounterFamily(r, "fetch_limiter_tokens_reserved_total",
                                    "Send times reserved at rate-limited hosts")
                          .Add({});
  tokens_returned_ = &CounterFamily(r, "fetch_limiter_tokens_returned_total",
                                    "Reserved send times given back unused")
                          .Add({});
  tokens_dropped_ =
      &CounterFamily(r, "fetch_limiter_tokens_dropped_total",
                     "Reserved send times not used and not given back (too "
                     "late to use, or reserved past by another replica)")
           .Add({});
}

void FetchMetrics::RegisterGrpcFamilies(prometheus::Registry& r) {
  auto& handled =
      CounterFamily(r, "fetch_grpc_server_handled_total",
                    "gRPC calls completed, by method and status code");
  auto& handling = HistogramFamily(
      r, "fetch_grpc_server_handling_seconds",
      "Time from the start of a gRPC call to its status, by method");
  for (size_t m = 0; m < kGrpcMethodLabels.size(); ++m) {
    for (size_t c = 0; c < kGrpcCodeLabels.size(); ++c) {
      handled_[m][c] = &handled.Add({{"grpc_method", Str(kGrpcMethodLabels[m])},
                                     {"grpc_code", Str(kGrpcCodeLabels[c])}});
    }
    handling_[m] =
        &handling.Add({{"grpc_method", Str(kGrpcMethodLabels[m])}}, Buckets());
  }
  stream_requests_ = &CounterFamily(r, "fetch_stream_requests_received_total",
                                    "Requests read from FetchStream calls")
                          .Add({});
  stream_room_wait_ =
      &CounterFamily(r, "fetch_stream_room_wait_seconds_total",
                     "Time FetchStream calls waited for room (their window "
                     "or the pending limits) before reading more input")
           .Add({});
}

void FetchMetrics::RegisterProcessFamilies(prometheus::Registry& r,
                                           const Options& options) {
  serving_ = &GaugeFamily(r, "fetch_serving",
                          "1 while serving, 0 while starting or draining")
                  .Add({});
  GaugeFamily(r, "fetch_build_info",
              "Always 1; the labels name the versions of fetchd, gRPC and "
              "libcurl")
      .Add({{"version", options.version},
            {"grpc_version", options.grpc_version},
            {"curl_version", options.curl_version}})
      .Set(1);
  GaugeFamily(r, "fetch_process_start_time_seconds",
              "Start time of the process, seconds since the Unix epoch")
      .Add({})
      .Set(ReadProcessStartTime().value_or(
          absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch())));
}

void FetchMetrics::OnPolicyDenied(absl::string_view category) {
  for (const auto& [name, counter] : denied_) {
    if (name == category) {
      counter->Increment();
      return;
    }
  }
  denied_.back().second->Increment();
}

void FetchMetrics::SetLiveSource(LiveSource source) {
  absl::MutexLock lock(&live_mu_);
  live_ = std::move(source);
}

void FetchMetrics::SetServing(bool serving) { serving_->Set(serving ? 1 : 0); }

Counter* FetchMetrics::RequestCounter(size_t method, size_t outcome,
                                      size_t status_class, size_t host) {
  // Out of range, the index would name another label set's slot (or none).
  assert(method < kMethodLabels.size() && outcome < kOutcomes &&
         status_class < kStatusClassLabels.size() && host < hosts_.size());
  const size_t index =
      ((method * kOutcomes + outcome) * kStatusClassLabels.size() +
       status_class) *
          hosts_.size() +
      host;
  return CachedChild(requests_[index], *requests_family_, [&] {
    return prometheus::Labels{
        {"method", Str(kMethodLabels[method])},
        {"outcome", OutcomeName(outcome)},
        {"status_class", Str(kStatusClassLabels[status_class])},
        {"host", hosts_.Name(host)}};
  });
}

Histogram* FetchMetrics::DurationHistogram(size_t method, size_t outcome) {
  assert(method < kMethodLabels.size() && outcome < kOutcomes);
  return CachedChild(
      durations_[method * kOutcomes + outcome], *duration_family_,
      [&] {
        return prometheus::Labels{{"method", Str(kMethodLabels[method])},
                                  {"outcome", OutcomeName(outcome)}};
      },
      Buckets());
}

void FetchMetrics::OnAttemptStarted(const core::FetchJob& /*job*/,
                                    absl::Duration queue_wait) {
  attempts_->Increment();
  phases_[static_cast<size_t>(Phase::kQueueWait)]->Observe(Seconds(queue_wait));
}

void FetchMetrics::OnAttemptFinished(const core::FetchJob& /*job*/,
                                     const fetch::v1::FetchResult& attempt,
                                     bool connected,
                                     std::optional<core::RetryReason> retry) {
  if (attempt.bytes_sent() > 0) {
    request_body_bytes_->Increment(static_cast<double>(attempt.bytes_sent()));
  }
  if (attempt.bytes_received() > 0) {
    response_body_bytes_->Increment(
        static_cast<double>(attempt.bytes_received()));
  }
  if (attempt.redirects() > 0) {
    redirects_->Increment(static_cast<double>(attempt.redirects()));
  }
  if (retry.has_value()) retries_[static_cast<size_t>(*retry)]->Increment();
  if (connected) connections_[attempt.connection_reused() ? 1 : 0]->Increment();
  ObservePhases(attempt, connected);
}

void FetchMetrics::ObservePhases(const fetch::v1::FetchResult& attempt,
                                 bool connected) {
  const auto observe = [&](Phase phase, double seconds) {
    phases_[static_cast<size_t>(phase)]->Observe(std::max(0.0, seconds));
  };
  const fetch::v1::Timings& t = attempt.timings();
  // Result timings: dns, connect and tls are their own phases; first_byte
  // and total count from the attempt's start.
  const double dns = Seconds(t.dns());
  const double connect = Seconds(t.connect());
  const double tls = Seconds(t.tls());
  const double first_byte = Seconds(t.first_byte());
  // A reused connection has no DNS, connect or TLS phase of its own.
  if (connected && !attempt.connection_reused()) {
    observe(Phase::kDns, dns);
    observe(Phase::kConnect, connect);
    if (tls > 0) observe(Phase::kTls, tls);
  }
  if (first_byte > 0) {
    observe(Phase::kFirstByte, first_byte - dns - connect - tls);
    observe(Phase::kTransfer, Seconds(t.total()) - first_byte);
  }
}

void FetchMetrics::OnResult(const core::FinishedRequest& request,
                            const fetch::v1::FetchResult& result,
                            absl::BitGenRef rng) {
  const size_t method = MethodLabel(request.method);
  const size_t outcome = OutcomeLabel(result.error());
  if (Counter* c =
          RequestCounter(method, outcome, StatusClassLabel(result.status()),
                         hosts_.Index(request.host_key))) {
    c->Increment();
  }
  if (Histogram* h = DurationHistogram(method, outcome)) {
    h->Observe(Seconds(request.duration));
  }
  if (access_log_sample_rate_ > 0 &&
      (access_log_sample_rate_ >= 1 ||
       absl::Bernoulli(rng, access_log_sample_rate_))) {
    spdlog::info(AccessLogLine(request, result));
  }
}

void FetchMetrics::OnStreamRequests(int64_t n) {
  stream_requests_->Increment(static_cast<double>(n));
}

void FetchMetrics::OnStreamWaited(absl::Duration waited) {
  stream_room_wait_->Increment(Seconds(waited));
}

void FetchMetrics::OnCallFinished(core::CallMethod method,
                                  absl::StatusCode code,
                                  absl::Duration handling, bool rejected) {
  const auto m = static_cast<size_t>(method);
  assert(m < handled_.size());
  auto c = static_cast<size_t>(code);
  if (c >= kGrpcCodeLabels.size())
    c = static_cast<size_t>(absl::StatusCode::kUnknown);
  handled_[m][c]->Increment();
  handling_[m]->Observe(Seconds(handling));
  if (!rejected) return;
  switch (code) {
    case absl::StatusCode::kInvalidArgument:
      rejected_[0]->Increment();
      break;
    case absl::StatusCode::kResourceExhausted:
      rejected_[1]->Increment();
      break;
    case absl::StatusCode::kUnavailable:
      rejected_[2]->Increment();
      break;
    default:
      break;
  }
}

void FetchMetrics::OnWsMessage(bool sent, uint64_t bytes) {
  const size_t i = sent ? 0 : 1;
  ws_frames_[i]->Increment();
  ws_bytes_[i]->Increment(static_cast<double>(bytes));
}

void FetchMetrics::OnLimiterMode(cluster::LimiterMode mode) {
  const int m = static_cast<int>(mode);
  for (int i = 0; i < cluster::kLimiterModes; ++i) {
    limiter_mode_[i]->Set(i == m ? 1 : 0);
  }
  limiter_transitions_[m]->Increment();
}

void FetchMetrics::OnRedisCall(cluster::RedisOperation op, int commands,
                               absl::Duration round_trip,
                               const absl::Status& status) {
  const int o = static_cast<int>(op);
  redis_calls_[o]->Increment(commands);
  if (!status.ok()) {
    const absl::string_view kind = cluster::RedisErrorKind(status);
    size_t i = 0;
    while (i + 1 < kRedisErrorKinds.size() && kRedisErrorKinds[i] != kind) ++i;
    redis_errors_[i]->Increment();
    return;
  }
  redis_round_trip_[o]->Observe(Seconds(round_trip));
}

void FetchMetrics::OnLeases(int granted, int released, int reaped, int held) {
  leases_granted_->Increment(granted);
  leases_released_->Increment(released);
  leases_reaped_->Increment(reaped);
  leases_held_->Set(held);
}

void FetchMetrics::OnTokens(int reserved, int returned, int dropped) {
  tokens_reserved_->Increment(reserved);
  tokens_returned_->Increment(returned);
  tokens_dropped_->Increment(dropped);
}

void FetchMetrics::OnLimiterStarts(int n) { limiter_starts_->Increment(n); }

void FetchMetrics::OnWsOpened() { ws_open_->Increment(); }

void FetchMetrics::OnWsClosed(int code) {
  ws_open_->Decrement();
  ws_closes_[WsCloseCodeLabel(code)]->Increment();
}

void FetchMetrics::OnWsHandshakeFailed(fetch::v1::ErrorKind kind) {
  size_t i = 0;
  while (i < kWsFailureKinds.size() && kWsFailureKinds[i].first != kind) ++i;
  ws_handshake_failures_[i]->Increment();
}

std::vector<MetricFamily> FetchMetrics::Collect() const {
  std::vector<MetricFamily> families = registry_->Collect();
  CollectLive(&families);
  return families;
}

void FetchMetrics::CollectLive(std::vector<MetricFamily>* out) const {
  LiveStats live;
  {
    absl::MutexLock lock(&live_mu_);
    if (live_) live = live_();
  }
  const auto gauge = [&](const char* name, const char* help, double value) {
    out->push_back(OneValue(name, help, MetricType::Gauge, value));
  };
  gauge("fetch_in_flight_transfers", "Attempts running in curl",
        static_cast<double>(live.engine.in_flight));
  gauge("fetch_queued_requests",
        "Requests waiting for a host, global or batch slot",
        static_cast<double>(live.engine.queued));
  gauge("fetch_delayed_retries", "Requests waiting for a retry backoff to end",
        static_cast<double>(live.engine.delayed));
  gauge("fetch_pending_requests",
        "Requests admitted whose result has not been delivered yet",
        static_cast<double>(live.pending));

  std::vector<std::pair<std::string, double>> active;
  for (size_t m = 0; m < kGrpcMethodLabels.size(); ++m) {
    active.emplace_back(Str(kGrpcMethodLabels[m]),
                        static_cast<double>(live.active_calls[m]));
  }
  AppendPoliteness(live.engine.politeness, out);
  out->push_back(GaugeByLabel("fetch_active_calls",
                              "gRPC calls admitted and not yet done, by method",
                              "grpc_method", active));

  const ProcessStats process = ReadProcessStats();
  if (process.cpu_seconds.has_value()) {
    out->push_back(OneValue("fetch_process_cpu_seconds_total",
                            "User and system CPU time of the process",
                            MetricType::Counter, *process.cpu_seconds));
  }
  if (process.resident_bytes.has_value()) {
    gauge("fetch_process_resident_memory_bytes",
          "Resident memory of the process", *process.resident_bytes);
  }
  if (process.open_fds.has_value()) {
    gauge("fetch_process_open_fds", "Open file descriptors of the process",
          *process.open_fds);
  }
  if (const std::optional<HeapStats> heap = ReadHeapStats(); heap.has_value()) {
    out->push_back(GaugeByLabel(
        "fetch_process_heap_bytes",
        "Allocator (tcmalloc) memory by state: in_use is held by the "
        "program; free_cached and free_mapped are free but resident; "
        "released went back to the kernel",
        "state",
        {{"in_use", static_cast<double>(heap->in_use)},
         {"free_cached", static_cast<double>(heap->free_cached)},
         {"free_mapped", static_cast<double>(heap->free_mapped)},
         {"released", static_cast<double>(heap->released)}}));
  }
}

std::string FetchMetrics::Render() const {
  return prometheus::TextSerializer().Serialize(Collect());
}

}  // namespace fetchd::metrics
