// raw_curl_multi: the baseline of the fetchd benchmark. It runs N GET
// requests for one URL with C transfers in flight, using what an application
// gets from libcurl alone: one thread, one CURLM, C easy handles that are
// re-added as soon as they finish (the loop of curl's
// docs/examples/10-at-a-time.c), with connections kept alive in the multi
// handle's cache. Bodies are counted and discarded.
//
//   raw_curl_multi --url http://127.0.0.1:PORT/1k --requests N --concurrency C
//
// Prints one JSON line on stdout:
//   {"requests":N,"ok":N,"seconds":S,"bytes":B,"peak_rss_kib":K}
// "ok" counts transfers that completed with CURLE_OK, status 200 and a body
// as long as its Content-Length; "seconds" is the wall time of the transfer
// loop; "bytes" sums every body received, failed requests included;
// "peak_rss_kib" is this process's VmHWM at the end.
//
// Exit status: 0 when every request was ok, 1 when some failed, 2 on a usage
// or setup error.
//
// Only loopback URLs are accepted: the benchmark must not leave the machine.

#include <curl/curl.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "bench/peak_rss.h"
#include "service/transport/curl_handles.h"

ABSL_FLAG(std::string, url, "", "URL to GET (http, loopback host only)");
ABSL_FLAG(int64_t, requests, 20000, "Requests in total");
ABSL_FLAG(int32_t, concurrency, 64, "Transfers in flight at once");
ABSL_FLAG(int32_t, timeout_ms, 30000, "Whole-transfer timeout per request");
ABSL_FLAG(int32_t, connect_timeout_ms, 5000, "Connect timeout per request");
ABSL_FLAG(std::string, cacert, "",
          "CA file (PEM) to trust for an https URL; HTTP/2 is then "
          "negotiated and concurrent transfers share a connection");

namespace {

constexpr int kMaxReportedFailures = 10;

struct GlobalCleanup {
  ~GlobalCleanup() { curl_global_cleanup(); }
};

using EasyPtr = fetchd::transport::CurlEasyPtr;
using MultiPtr = fetchd::transport::CurlMultiPtr;
using UrlPtr = fetchd::transport::CurlUrlPtr;

// One reusable easy handle and the body bytes of its current transfer.
// Owned by main(); the handle's CURLOPT_PRIVATE and CURLOPT_WRITEDATA point
// back at it, so it must not move while registered (it lives in a unique_ptr).
struct Transfer {
  EasyPtr easy;
  uint64_t body_bytes = 0;
};

size_t CountBody(char* /*data*/, size_t size, size_t nmemb, void* userdata) {
  static_cast<Transfer*>(userdata)->body_bytes += size * nmemb;
  return size * nmemb;
}

// Accepts http:// URLs whose host is 127.0.0.1, ::1 or localhost.
absl::Status CheckLoopbackUrl(const std::string& url) {
  UrlPtr parsed(curl_url());
  if (parsed == nullptr) return absl::InternalError("curl_url() failed");
  CURLUcode uc = curl_url_set(parsed.get(), CURLUPART_URL, url.c_str(), 0);
  if (uc != CURLUE_OK) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad --url '", url, "': ", curl_url_strerror(uc)));
  }
  char* scheme = nullptr;
  char* host = nullptr;
  uc = curl_url_get(parsed.get(), CURLUPART_SCHEME, &scheme, 0);
  if (uc == CURLUE_OK)
    uc = curl_url_get(parsed.get(), CURLUPART_HOST, &host, 0);
  const std::string scheme_str = scheme != nullptr ? scheme : "";
  const std::string host_str = host != nullptr ? host : "";
  curl_free(scheme);
  curl_free(host);
  if (uc != CURLUE_OK) {
    return absl::InvalidArgumentError(
        absl::StrCat("bad --url '", url, "': ", curl_url_strerror(uc)));
  }
  if (scheme_str != "http" && scheme_str != "https") {
    return absl::InvalidArgumentError("--url must be http:// or https://");
  }
  if (host_str != "127.0.0.1" && host_str != "[::1]" &&
      host_str != "localhost") {
    return absl::InvalidArgumentError(absl::StrCat(
        "--url host '", host_str, "' is not loopback; benchmarks stay local"));
  }
  return absl::OkStatus();
}

template <typename T>
absl::Status SetOpt(CURL* easy, CURLoption option, T value) {
  const CURLcode rc = curl_easy_setopt(easy, option, value);
  if (rc != CURLE_OK) {
    return absl::InternalError(absl::StrCat("curl_easy_setopt(", option,
                                            "): ", curl_easy_strerror(rc)));
  }
  return absl::OkStatus();
}

absl::Status ConfigureTransfer(Transfer& transfer, const std::string& url) {
  CURL* easy = transfer.easy.get();
  const bool https = url.rfind("https:", 0) == 0;
  const std::string cacert = absl::GetFlag(FLAGS_cacert);
  const absl::Status statuses[] = {
      SetOpt(easy, CURLOPT_URL, url.c_str()),
      SetOpt(easy, CURLOPT_PROTOCOLS_STR, "http,https"),
      // Environment proxies (http_proxy) must not redirect a loopback bench.
      SetOpt(easy, CURLOPT_PROXY, ""),
      SetOpt(easy, CURLOPT_NOSIGNAL, 1L),
      // https: HTTP/2 by ALPN, waiting for the one multiplexed connection
      // as fetchd does; http: HTTP/1.1 with keep-alive.
      SetOpt(easy, CURLOPT_HTTP_VERSION,
             static_cast<long>(https ? CURL_HTTP_VERSION_2TLS
                                     : CURL_HTTP_VERSION_1_1)),
      SetOpt(easy, CURLOPT_PIPEWAIT, https ? 1L : 0L),
      SetOpt(easy, CURLOPT_CAINFO,
             https ? cacert.c_str() : static_cast<const char*>(nullptr)),
      SetOpt(easy, CURLOPT_TCP_NODELAY, 1L),
      SetOpt(easy, CURLOPT_FORBID_REUSE, 0L),
      SetOpt(easy, CURLOPT_FOLLOWLOCATION, 0L),
      SetOpt(easy, CURLOPT_TIMEOUT_MS,
             static_cast<long>(absl::GetFlag(FLAGS_timeout_ms))),
      SetOpt(easy, CURLOPT_CONNECTTIMEOUT_MS,
             static_cast<long>(absl::GetFlag(FLAGS_connect_timeout_ms))),
      SetOpt(easy, CURLOPT_WRITEFUNCTION, &CountBody),
      SetOpt(easy, CURLOPT_WRITEDATA, static_cast<void*>(&transfer)),
      SetOpt(easy, CURLOPT_PRIVATE, static_cast<void*>(&transfer)),
  };
  for (const absl::Status& status : statuses) {
    if (!status.ok()) return status;
  }
  return absl::OkStatus();
}

absl::Status AddTransfer(CURLM* multi, Transfer& transfer) {
  transfer.body_bytes = 0;
  const CURLMcode mc = curl_multi_add_handle(multi, transfer.easy.get());
  if (mc != CURLM_OK) {
    return absl::InternalError(
        absl::StrCat("curl_multi_add_handle: ", curl_multi_strerror(mc)));
  }
  return absl::OkStatus();
}

// Tally of finished transfers. Failures are grouped by reason so that a
// broken run says why in a few lines.
struct Tally {
  int64_t finished = 0;
  int64_t ok = 0;
  uint64_t bytes = 0;
  std::map<std::string, int64_t> failures;

  void Fail(const std::string& reason) {
    if (++failures[reason] <= kMaxReportedFailures) {
      std::fprintf(stderr, "raw_curl_multi: request failed: %s\n",
                   reason.c_str());
    }
  }
};

// Classifies one finished transfer; `result` is the CURLMsg's result code.
void Record(Transfer& transfer, CURLcode result, Tally& tally) {
  ++tally.finished;
  tally.bytes += transfer.body_bytes;
  if (result != CURLE_OK) {
    tally.Fail(absl::StrCat("curl: ", curl_easy_strerror(result)));
    return;
  }
  long status = 0;
  curl_off_t content_length = -1;
  CURL* easy = transfer.easy.get();
  if (curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK ||
      curl_easy_getinfo(easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
                        &content_length) != CURLE_OK) {
    tally.Fail("curl_easy_getinfo failed");
    return;
  }
  if (status != 200) {
    tally.Fail(absl::StrCat("HTTP status ", status));
    return;
  }
  if (content_length >= 0 &&
      transfer.body_bytes != static_cast<uint64_t>(content_length)) {
    tally.Fail(absl::StrCat("body of ", transfer.body_bytes,
                            " bytes, Content-Length ", content_length));
    return;
  }
  ++tally.ok;
}

// Runs `requests` transfers, `transfers.size()` at a time. Returns an error
// only for a multi-interface failure; per-request failures go to `tally`.
absl::Status RunLoop(CURLM* multi,
                     std::vector<std::unique_ptr<Transfer>>& transfers,
                     int64_t requests, Tally& tally) {
  int64_t started = 0;
  for (auto& transfer : transfers) {
    if (absl::Status s = AddTransfer(multi, *transfer); !s.ok()) return s;
    ++started;
  }
  while (tally.finished < requests) {
    int running = 0;
    CURLMcode mc = curl_multi_perform(multi, &running);
    if (mc != CURLM_OK) {
      return absl::InternalError(
          absl::StrCat("curl_multi_perform: ", curl_multi_strerror(mc)));
    }
    int queued = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi, &queued)) {
      if (msg->msg != CURLMSG_DONE) continue;
      // msg is invalid once its handle is removed: copy what we need first.
      CURL* easy = msg->easy_handle;
      const CURLcode result = msg->data.result;
      char* priv = nullptr;
      if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv) != CURLE_OK ||
          priv == nullptr) {
        return absl::InternalError("transfer without CURLINFO_PRIVATE");
      }
      Transfer& transfer = *reinterpret_cast<Transfer*>(priv);
      Record(transfer, result, tally);
      mc = curl_multi_remove_handle(multi, easy);
      if (mc != CURLM_OK) {
        return absl::InternalError(absl::StrCat("curl_multi_remove_handle: ",
                                                curl_multi_strerror(mc)));
      }
      if (started < requests) {
        if (absl::Status s = AddTransfer(multi, transfer); !s.ok()) return s;
        ++started;
      }
    }
    if (tally.finished < requests) {
      // Every transfer has a timeout, so this loop ends; the 1 s poll bound
      // only keeps a stuck socket from hiding a bug forever.
      mc = curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
      if (mc != CURLM_OK) {
        return absl::InternalError(
            absl::StrCat("curl_multi_poll: ", curl_multi_strerror(mc)));
      }
    }
  }
  return absl::OkStatus();
}

int Run() {
  const std::string url = absl::GetFlag(FLAGS_url);
  const int64_t requests = absl::GetFlag(FLAGS_requests);
  const int32_t concurrency = absl::GetFlag(FLAGS_concurrency);
  if (requests <= 0 || concurrency <= 0 ||
      absl::GetFlag(FLAGS_timeout_ms) <= 0 ||
      absl::GetFlag(FLAGS_connect_timeout_ms) <= 0) {
    std::fprintf(stderr,
                 "raw_curl_multi: --requests, --concurrency and timeouts must "
                 "be positive\n");
    return 2;
  }
  if (absl::Status s = CheckLoopbackUrl(url); !s.ok()) {
    std::fprintf(stderr, "raw_curl_multi: %s\n", s.ToString().c_str());
    return 2;
  }

  MultiPtr multi(curl_multi_init());
  if (multi == nullptr) {
    std::fprintf(stderr, "raw_curl_multi: curl_multi_init failed\n");
    return 2;
  }
  const int64_t in_flight = std::min<int64_t>(concurrency, requests);
  const CURLMcode mc = curl_multi_setopt(multi.get(), CURLMOPT_MAXCONNECTS,
                                         static_cast<long>(in_flight));
  if (mc != CURLM_OK) {
    std::fprintf(stderr, "raw_curl_multi: CURLMOPT_MAXCONNECTS: %s\n",
                 curl_multi_strerror(mc));
    return 2;
  }

  std::vector<std::unique_ptr<Transfer>> transfers;
  transfers.reserve(static_cast<size_t>(in_flight));
  for (int64_t i = 0; i < in_flight; ++i) {
    auto transfer = std::make_unique<Transfer>();
    transfer->easy.reset(curl_easy_init());
    if (transfer->easy == nullptr) {
      std::fprintf(stderr, "raw_curl_multi: curl_easy_init failed\n");
      return 2;
    }
    if (absl::Status s = ConfigureTransfer(*transfer, url); !s.ok()) {
      std::fprintf(stderr, "raw_curl_multi: %s\n", s.ToString().c_str());
      return 2;
    }
    transfers.push_back(std::move(transfer));
  }

  Tally tally;
  const auto start = std::chrono::steady_clock::now();
  const absl::Status loop = RunLoop(multi.get(), transfers, requests, tally);
  const std::chrono::duration<double> elapsed =
      std::chrono::steady_clock::now() - start;
  // Detach the handles still registered (only after a loop error) before the
  // multi handle goes away.
  for (auto& transfer : transfers) {
    curl_multi_remove_handle(multi.get(), transfer->easy.get());
  }
  if (!loop.ok()) {
    std::fprintf(stderr, "raw_curl_multi: %s\n", loop.ToString().c_str());
    return 2;
  }

  for (const auto& [reason, count] : tally.failures) {
    std::fprintf(stderr, "raw_curl_multi: %lld x %s\n",
                 static_cast<long long>(count), reason.c_str());
  }
  std::printf("%s\n", absl::StrFormat(
                          R"({"requests":%d,"ok":%d,"seconds":%.6f,"bytes":%d,)"
                          R"("peak_rss_kib":%d})",
                          requests, tally.ok, elapsed.count(), tally.bytes,
                          fetchd::bench::PeakRssKib())
                          .c_str());
  std::fflush(stdout);
  return tally.ok == requests ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "raw_curl_multi --url URL --requests N --concurrency C\n"
      "Single-thread libcurl multi baseline for the fetchd benchmark.");
  absl::ParseCommandLine(argc, argv);
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
    std::fprintf(stderr, "raw_curl_multi: curl_global_init failed\n");
    return 2;
  }
  GlobalCleanup global_cleanup;
  return Run();
}
