// unary_latency: what a unary fetch.v1.FetchService/Fetch adds over asking
// the target directly.
//
//   unary_latency --server 127.0.0.1:PORT --url http://127.0.0.1:P/1k
//                 --requests N [--warmup W]
//
// Alternates, N times, one direct GET of the URL (libcurl easy handle,
// kept-alive connection, body read) and one unary Fetch of the same URL
// through fetchd (sync stub, one channel), timing each round trip with
// steady_clock. One request at a time, so the figures are latency, not
// throughput. Prints one JSON line:
//   {"requests":N,"direct_p50_us":..,"direct_p99_us":..,"fetchd_p50_us":..,
//    "fetchd_p99_us":..,"added_p50_us":..,"added_p99_us":..}
// where added_pXX = fetchd_pXX - direct_pXX.
//
// Exit status: 0 when every request got 200, 1 otherwise, 2 on a usage
// error, 3 when fetchd does not accept a connection within 5 s. Only
// loopback addresses are accepted: the benchmark must not leave the machine.

#include <curl/curl.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "fetch/v1/fetch.grpc.pb.h"
#include "service/transport/curl_handles.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "fetchd address, HOST:PORT");
ABSL_FLAG(std::string, url, "", "URL to GET (http, loopback host only)");
ABSL_FLAG(int32_t, requests, 2000, "Measured requests of each kind");
ABSL_FLAG(int32_t, warmup, 200, "Unmeasured requests of each kind first");

namespace {

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitNoServer = 3;

using Clock = std::chrono::steady_clock;

size_t Discard(char* /*data*/, size_t size, size_t nmemb, void* /*self*/) {
  return size * nmemb;
}

double Micros(Clock::duration d) {
  return std::chrono::duration<double, std::micro>(d).count();
}

// The q-quantile (0..1) of `v`, nearest rank. Sorts v.
double Quantile(std::vector<double>& v, double q) {
  std::sort(v.begin(), v.end());
  const size_t rank = static_cast<size_t>(q * static_cast<double>(v.size()));
  return v[std::min(rank, v.size() - 1)];
}

bool IsLoopback(const std::string& host_port_or_url) {
  return absl::StrContains(host_port_or_url, "127.0.0.1") ||
         absl::StrContains(host_port_or_url, "[::1]") ||
         absl::StrContains(host_port_or_url, "localhost");
}

int Run() {
  const std::string server = absl::GetFlag(FLAGS_server);
  const std::string url = absl::GetFlag(FLAGS_url);
  const int32_t requests = absl::GetFlag(FLAGS_requests);
  const int32_t warmup = absl::GetFlag(FLAGS_warmup);
  if (requests <= 0 || warmup < 0 || !absl::StartsWith(url, "http://") ||
      !IsLoopback(url) || !IsLoopback(server)) {
    std::fprintf(stderr,
                 "unary_latency: needs --requests > 0, --warmup >= 0, an "
                 "http:// --url and a --server on loopback\n");
    return kExitUsage;
  }

  fetchd::transport::CurlEasyPtr easy(curl_easy_init());
  if (easy == nullptr) return kExitFailed;
  curl_easy_setopt(easy.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(easy.get(), CURLOPT_PROXY, "");
  curl_easy_setopt(easy.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(easy.get(), CURLOPT_WRITEFUNCTION, &Discard);

  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(
      server, grpc::InsecureChannelCredentials(), args);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() +
                                 std::chrono::seconds(5))) {
    std::fprintf(stderr, "unary_latency: cannot connect to fetchd at %s\n",
                 server.c_str());
    return kExitNoServer;
  }
  auto stub = fetch::v1::FetchService::NewStub(channel);
  fetch::v1::FetchRequest request;
  request.set_url(url);

  std::vector<double> direct, through;
  direct.reserve(requests);
  through.reserve(requests);
  int failures = 0;
  for (int32_t i = 0; i < warmup + requests; ++i) {
    const bool measured = i >= warmup;
    Clock::time_point start = Clock::now();
    const CURLcode rc = curl_easy_perform(easy.get());
    long status = 0;  // NOLINT(google-runtime-int)
    curl_easy_getinfo(easy.get(), CURLINFO_RESPONSE_CODE, &status);
    if (measured) direct.push_back(Micros(Clock::now() - start));
    if (rc != CURLE_OK || status != 200) ++failures;

    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() +
                         std::chrono::seconds(30));
    fetch::v1::FetchResult result;
    start = Clock::now();
    const grpc::Status s = stub->Fetch(&context, request, &result);
    if (measured) through.push_back(Micros(Clock::now() - start));
    if (!s.ok() || result.status() != 200) ++failures;
  }
  if (failures > 0) {
    std::fprintf(stderr, "unary_latency: %d requests failed\n", failures);
    return kExitFailed;
  }
  const double d50 = Quantile(direct, 0.5), d99 = Quantile(direct, 0.99);
  const double f50 = Quantile(through, 0.5), f99 = Quantile(through, 0.99);
  std::printf("%s\n",
              absl::StrFormat(
                  R"({"requests":%d,"direct_p50_us":%.1f,"direct_p99_us":%.1f,)"
                  R"("fetchd_p50_us":%.1f,"fetchd_p99_us":%.1f,)"
                  R"("added_p50_us":%.1f,"added_p99_us":%.1f})",
                  requests, d50, d99, f50, f99, f50 - d50, f99 - d99)
                  .c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "unary_latency --server HOST:PORT --url URL [--requests N]\n"
      "Latency fetchd's unary Fetch adds over a direct request.");
  absl::ParseCommandLine(argc, argv);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const int rc = Run();
  curl_global_cleanup();
  return rc;
}
