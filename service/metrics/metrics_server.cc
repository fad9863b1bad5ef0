#include "service/metrics/metrics_server.h"

#include <exception>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "prometheus/collectable.h"
#include "prometheus/exposer.h"

namespace fetchd::metrics {
namespace {

// Scrapes served at once.
constexpr size_t kServerThreads = 2;

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& listen,
    const std::weak_ptr<prometheus::Collectable>& collectable) {
  const size_t colon = listen.rfind(':');
  int requested_port = -1;
  // civetweb would also take a comma-separated list, or a bare port.
  if (colon == std::string::npos || colon == 0 ||
      listen.find_first_of(", \t") != std::string::npos ||
      !absl::SimpleAtoi(absl::string_view(listen).substr(colon + 1),
                        &requested_port) ||
      requested_port < 0 || requested_port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics listen address must be host:port, got \"", listen, "\""));
  }
  std::unique_ptr<prometheus::Exposer> exposer;
  std::vector<int> ports;
  try {
    exposer = std::make_unique<prometheus::Exposer>(listen, kServerThreads);
    exposer->RegisterCollectable(collectable, "/metrics");
    ports = exposer->GetListeningPorts();
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", listen,
                     " (metrics.listen): the address is in use or not local (",
                     e.what(), ")"));
  }
  if (ports.size() != 1 || ports[0] <= 0) {
    return absl::InternalError(
        absl::StrCat("metrics server on ", listen, ": no listening port"));
  }
  std::string address = absl::StrCat(listen.substr(0, colon), ":", ports[0]);
  return std::unique_ptr<MetricsServer>(
      new MetricsServer(std::move(exposer), ports[0], std::move(address)));
}

MetricsServer::MetricsServer(std::unique_ptr<prometheus::Exposer> exposer,
                             int port, std::string address)
    : exposer_(std::move(exposer)), port_(port), address_(std::move(address)) {}

MetricsServer::~MetricsServer() = default;

}  // namespace fetchd::metrics
