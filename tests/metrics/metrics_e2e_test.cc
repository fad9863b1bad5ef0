// The real fetchd binary: /metrics on --metrics_listen, its port in
// --metrics_port_file, the build info, request counts, and fetch_serving
// going to 0 as soon as a SIGTERM starts the drain.
#include <curl/curl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/fetch_client.h"
#include "gtest/gtest.h"
#include "tests/e2e/fetchd_launcher.h"
#include "tests/metrics/exposition.h"
#include "tests/testing/test_http_server.h"

namespace fetchd::testing {
namespace {

constexpr absl::Duration kTimeout = absl::Seconds(20);

size_t AppendTo(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

// The samples of http://127.0.0.1:`port`/metrics; empty on failure.
std::vector<Sample> Scrape(int port) {
  CURL* easy = curl_easy_init();
  if (easy == nullptr) return {};
  std::string body;
  const std::string url = absl::StrCat("http://127.0.0.1:", port, "/metrics");
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy, CURLOPT_PROXY, "");
  curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 10000L);
  curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &AppendTo);
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &body);
  const CURLcode code = curl_easy_perform(easy);
  curl_easy_cleanup(easy);
  EXPECT_EQ(code, CURLE_OK) << curl_easy_strerror(code);
  return code == CURLE_OK ? ParseExposition(body) : std::vector<Sample>{};
}

// Polls `scrape_value` until it returns `want`, for at most kTimeout.
template <typename F>
bool Eventually(F scrape_value, double want) {
  const absl::Time deadline = absl::Now() + kTimeout;
  while (absl::Now() < deadline) {
    if (scrape_value() == want) return true;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return false;
}

// The port in `path` once fetchd has written it ("PORT\n"), else 0.
int AwaitPortFile(const std::string& path) {
  const absl::Time deadline = absl::Now() + kTimeout;
  while (absl::Now() < deadline) {
    std::stringstream text;
    text << std::ifstream(path).rdbuf();
    int port = 0;
    if (absl::EndsWith(text.str(), "\n") &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(text.str()), &port)) {
      return port;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  return 0;
}

TEST(MetricsE2eTest, ServesMetricsAndStopsServingWhenDraining) {
  TestHttpServer http;
  ASSERT_TRUE(http.Start().ok());
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) /
      absl::StrCat("metrics_e2e_", getpid());
  std::filesystem::create_directories(dir);
  const std::string metrics_port_file = (dir / "metrics_port").string();
  absl::StatusOr<RunningFetchd> fetchd =
      StartFetchdProcess(FETCHD_BIN, (dir / "port").string(),
                         {"--workers=1", "--drain_seconds=20",
                          "--metrics_port_file=" + metrics_port_file},
                         {}, kTimeout);
  ASSERT_TRUE(fetchd.ok()) << fetchd.status();
  const int metrics_port = AwaitPortFile(metrics_port_file);
  ASSERT_GT(metrics_port, 0);
  auto client = client::FetchClient::Connect(fetchd->address);
  ASSERT_TRUE(client.ok()) << client.status();

  fetch::v1::FetchRequest ok;
  ok.set_url(http.Url("/ok?sig=secret"));
  const absl::StatusOr<fetch::v1::FetchResult> result = (*client)->Fetch(ok);
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->status(), 200u);

  std::vector<Sample> s = Scrape(metrics_port);
  EXPECT_EQ(Sum(s, "fetch_requests_total",
                {{"method", "GET"},
                 {"outcome", "ok"},
                 {"status_class", "2xx"},
                 {"host", "other"}}),
            1);
  EXPECT_EQ(Sum(s, "fetch_grpc_server_handled_total",
                {{"grpc_method", "Fetch"}, {"grpc_code", "OK"}}),
            1);
  EXPECT_EQ(Sum(s, "fetch_serving"), 1);
  EXPECT_EQ(
      Sum(s, "fetch_build_info",
          {{"version", FETCHD_VERSION},
           {"curl_version", curl_version_info(CURLVERSION_NOW)->version}}),
      1);
  for (const Sample& sample : s) {
    if (sample.name == "fetch_build_info") {
      EXPECT_FALSE(sample.labels.at("grpc_version").empty());
    }
  }
  // The allocator's figures: fetchd runs on tcmalloc except in the
  // sanitizer builds, which bring their own allocator.
#if FETCHD_ON_TCMALLOC
  EXPECT_GT(Sum(s, "fetch_process_heap_bytes", {{"state", "in_use"}}), 0);
  for (const char* state : {"free_cached", "free_mapped", "released"}) {
    EXPECT_TRUE(std::any_of(s.begin(), s.end(), [&](const Sample& sample) {
      return sample.name == "fetch_process_heap_bytes" &&
             sample.labels.at("state") == state;
    })) << state;
  }
#else
  EXPECT_TRUE(std::none_of(s.begin(), s.end(), [](const Sample& sample) {
    return sample.name == "fetch_process_heap_bytes";
  }));
#endif

  // A slow request keeps fetchd draining after SIGTERM.
  std::thread slow([&] {
    fetch::v1::FetchRequest delay;
    delay.set_url(http.Url("/delay?ms=3000"));
    const auto delayed = (*client)->Fetch(delay);
    EXPECT_TRUE(delayed.ok()) << delayed.status();
  });
  const auto gauge = [&](const char* name) {
    return Sum(Scrape(metrics_port), name);
  };
  // The slow request is at the server (the gauge alone could still show an
  // earlier transfer finishing, and SIGTERM would then refuse the slow one).
  const absl::Time deadline = absl::Now() + kTimeout;
  while (http.RequestCount("/delay") == 0 && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(5));
  }
  EXPECT_EQ(http.RequestCount("/delay"), 1);
  EXPECT_TRUE(
      Eventually([&] { return gauge("fetch_in_flight_transfers"); }, 1));
  ASSERT_TRUE(fetchd->process->Signal(SIGTERM));
  EXPECT_TRUE(Eventually([&] { return gauge("fetch_serving"); }, 0));
  // Still draining: the slow request runs, and /metrics still answers.
  EXPECT_EQ(gauge("fetch_in_flight_transfers"), 1);
  slow.join();

  const ExitInfo exit = fetchd->process->Wait(kTimeout);
  EXPECT_EQ(exit.exit_code, 0) << Describe(exit);
  EXPECT_EQ(exit.stdout_text.find("secret"), std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace fetchd::testing
