// MetricsServer: serves a prometheus::Collectable in the Prometheus text
// format on http://<listen>/metrics (prometheus-cpp's Exposer, an embedded
// civetweb with its own threads). The one place where the throwing
// prometheus-cpp HTTP server is wrapped.
//
// Thread-safety: Start() and the destructor from one thread; port() and
// address() from any.
#ifndef FETCHD_SERVICE_METRICS_METRICS_SERVER_H_
#define FETCHD_SERVICE_METRICS_METRICS_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace prometheus {
class Collectable;
class Exposer;
}  // namespace prometheus

namespace fetchd::metrics {

class MetricsServer {
 public:
  // Listens on `listen` ("host:port", an IPv4 address or a host name; port
  // 0 picks a free one) and serves `collectable`, collected at each scrape,
  // on /metrics. The collectable is held weakly: once it is gone the page
  // is empty. Errors: InvalidArgument when `listen` is not host:port,
  // Unavailable when it can't be bound (in use, not a local address).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& listen,
      const std::weak_ptr<prometheus::Collectable>& collectable);
  // Stops listening; waits for the scrapes in progress.
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // The bound port.
  int port() const { return port_; }
  // "host:port" as bound, e.g. "127.0.0.1:9464".
  const std::string& address() const { return address_; }

 private:
  MetricsServer(std::unique_ptr<prometheus::Exposer> exposer, int port,
                std::string address);

  std::unique_ptr<prometheus::Exposer> exposer_;
  const int port_;
  const std::string address_;
};

}  // namespace fetchd::metrics

#endif  // FETCHD_SERVICE_METRICS_METRICS_SERVER_H_
