// ServiceHarness: a real fetchd inside the test process — the production
// wiring (server::FetchdServer: worker pool, FetchService, WebSocketService,
// health, on 127.0.0.1:0 with the credentials of config.auth) — plus a
// client connected to it over TCP. Tests tweak the config and the client
// options before Start().
#ifndef FETCHD_TESTS_API_SERVICE_HARNESS_H_
#define FETCHD_TESTS_API_SERVICE_HARNESS_H_

#include <curl/curl.h>
#include <grpcpp/grpcpp.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "client/fetch_client.h"
#include "fetch/v1/config.pb.h"
#include "fetch/v1/fetch.pb.h"
#include "gtest/gtest.h"
#include "service/api/call_gate.h"
#include "service/config/server_config.h"
#include "service/server/fetchd_server.h"
#include "service/transport/worker_pool.h"
#include "tests/testing/fetch_helpers.h"

namespace fetchd::testing {

class ServiceHarness {
 public:
  ServiceHarness() : config_(config::DefaultServerConfig()) {
    curl_global_init(CURL_GLOBAL_ALL);
    config_.set_listen("127.0.0.1:0");
    config_.set_workers(2);
    // The tests' servers are on loopback, which the default policy denies.
    // Policy tests clear this.
    config_.mutable_policy()->add_allow()->set_cidr("127.0.0.0/8");
    config_.mutable_policy()->add_allow()->set_cidr("::1");
  }
  ~ServiceHarness() { Stop(); }

  fetch::v1::ServerConfig& config() { return config_; }
  // Told about attempts, results and calls; set before Start(). Not owned.
  void set_observer(core::FetchObserver* observer) { observer_ = observer; }
  // How client() connects (TLS, certificates, token); set before Start().
  client::ClientOptions& client_options() { return client_options_; }

  void Start() {
    ASSERT_TRUE(config::ValidateServerConfig(config_).ok())
        << config::ValidateServerConfig(config_);
    server::FetchdServer::Options options;
    options.observer = observer_;
    options.serve_metrics = false;
    auto server = server::FetchdServer::Start(config_, options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = *std::move(server);
    target_ = server_->address();
    auto client = client::FetchClient::Connect(target_, client_options_);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = *std::move(client);
  }

  // Another client of the running server.
  absl::StatusOr<std::unique_ptr<client::FetchClient>> Connect(
      const client::ClientOptions& options) const {
    return client::FetchClient::Connect(target_, options);
  }

  void Stop() {
    client_.reset();
    server_.reset();
  }

  // Runs a batch to the end; checks that every request got exactly one
  // result (indices 0..n-1 once each) when the RPC ended OK.
  std::vector<fetch::v1::FetchResult> Run(const fetch::v1::BatchRequest& batch,
                                          absl::Status* status = nullptr) {
    std::vector<fetch::v1::FetchResult> results;
    absl::Status s =
        client_->FetchBatch(batch, [&](const fetch::v1::FetchEvent& event) {
          for (const auto& r : event.results()) results.push_back(r);
        });
    if (status != nullptr) {
      *status = s;
    } else {
      EXPECT_TRUE(s.ok()) << s;
    }
    if (s.ok()) {
      std::set<uint32_t> seen;
      for (const auto& r : results) {
        EXPECT_TRUE(seen.insert(r.index()).second)
            << "index " << r.index() << " twice";
      }
      EXPECT_EQ(results.size(), static_cast<size_t>(batch.requests_size()));
      EXPECT_EQ(seen.size(), static_cast<size_t>(batch.requests_size()));
    }
    return results;
  }

  // Results indexed by request index.
  std::vector<fetch::v1::FetchResult> RunByIndex(
      const fetch::v1::BatchRequest& batch) {
    std::vector<fetch::v1::FetchResult> by_index(batch.requests_size());
    for (auto& r : Run(batch)) by_index.at(r.index()) = std::move(r);
    return by_index;
  }

  client::FetchClient& client() { return *client_; }
  fetch::v1::FetchService::Stub& stub() { return client_->stub(); }
  // Admission, drain and the calls' counters.
  api::CallGate& gate() { return server_->gate(); }
  const api::CallStats& call_stats() const { return server_->call_stats(); }
  transport::WorkerPool& pool() { return server_->pool(); }
  server::FetchdServer& server() { return *server_; }
  const std::string& target() const { return target_; }

 private:
  fetch::v1::ServerConfig config_;
  core::FetchObserver* observer_ = nullptr;
  client::ClientOptions client_options_;
  std::unique_ptr<server::FetchdServer> server_;
  std::unique_ptr<client::FetchClient> client_;
  std::string target_;
};

inline fetch::v1::FetchRequest* AddUrl(fetch::v1::BatchRequest* batch,
                                       const std::string& url) {
  fetch::v1::FetchRequest* r = batch->add_requests();
  r->set_url(url);
  r->set_id("r" + std::to_string(batch->requests_size() - 1));
  return r;
}

inline void AddHeader(fetch::v1::FetchRequest* request, const std::string& name,
                      const std::string& value) {
  fetch::v1::Header* h = request->add_headers();
  h->set_name(name);
  h->set_value(value);
}

// Waits for `condition` with a bounded number of short polls; for state that
// lives in another process or thread and has no notification.
template <typename Cond>
bool Eventually(Cond condition, absl::Duration timeout = absl::Seconds(5)) {
  const absl::Time end = absl::Now() + timeout;
  while (absl::Now() < end) {
    if (condition()) return true;
    absl::SleepFor(absl::Milliseconds(5));
  }
  return condition();
}

inline google::protobuf::Duration Millis(int64_t ms) {
  google::protobuf::Duration d;
  d.set_seconds(ms / 1000);
  d.set_nanos(static_cast<int32_t>((ms % 1000) * 1000000));
  return d;
}

inline double Seconds(const google::protobuf::Duration& d) {
  return static_cast<double>(d.seconds()) + d.nanos() / 1e9;
}

}  // namespace fetchd::testing

#endif  // FETCHD_TESTS_API_SERVICE_HARNESS_H_
