// fetchd_load: the fetchd side of the benchmark. It sends N GET requests for
// one URL through a running fetchd as FetchBatch calls on the generated sync
// stub, reads every FetchEvent and checks each result.
//
//   fetchd_load --server 127.0.0.1:PORT --url http://127.0.0.1:P/1k
//               --requests N --concurrency C [--batch_size K]
//
// By default one batch carries all N requests with max_concurrency = C; with
// --batch_size K the requests go in batches of K, one after another; with
// --stream they go through one FetchStream call, in messages of
// --message_size built before it starts (as batches are). Prints
// the same JSON line as raw_curl_multi:
//   {"requests":N,"ok":N,"seconds":S,"bytes":B,"peak_rss_kib":K}
// "ok" counts results with status 200 and error NONE, delivered exactly once
// for their index, in batches whose RPC ended OK; "seconds" is the wall time
// of the RPCs (batch building and channel setup excluded); "bytes" sums every
// result body received, failed requests included; "peak_rss_kib" is this
// process's VmHWM at the end.
//
// Exit status: 0 when every request was ok, 1 when some failed, 2 on a usage
// error, 3 when fetchd does not accept a connection within
// --connect_timeout_s (5 s by default).
//
// Only loopback addresses are accepted: the benchmark must not leave the
// machine.

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "bench/peak_rss.h"
#include "fetch/v1/fetch.grpc.pb.h"

ABSL_FLAG(std::string, server, "127.0.0.1:50051", "fetchd address, HOST:PORT");
ABSL_FLAG(std::string, url, "", "URL to GET (http, loopback host only)");
ABSL_FLAG(int64_t, requests, 20000, "Requests in total");
ABSL_FLAG(int32_t, concurrency, 64, "BatchRequest.max_concurrency");
ABSL_FLAG(int64_t, batch_size, 0,
          "Requests per FetchBatch call, batches run sequentially; 0 sends "
          "all requests in one batch");
ABSL_FLAG(int32_t, connect_timeout_s, 5,
          "Give up (exit 3) when fetchd does not accept a connection in time");
ABSL_FLAG(int32_t, deadline_s, 600, "Deadline of each FetchBatch call");
ABSL_FLAG(bool, stream, false,
          "Send the requests through one FetchStream call (messages of "
          "--message_size requests from a writer thread) instead of "
          "FetchBatch calls");
ABSL_FLAG(int32_t, message_size, 256, "Requests per FetchStream message");
ABSL_FLAG(std::string, cacert, "",
          "CA file (PEM) fetchd should trust for an https URL (sent as each "
          "request's tls.ca_pem)");

namespace {

constexpr int kExitFailed = 1;
constexpr int kExitUsage = 2;
constexpr int kExitNoServer = 3;
constexpr int kMaxReportedFailures = 10;
constexpr int kMaxReceiveMessageBytes = 64 << 20;

// Host part of "host:port" or "[v6]:port".
absl::string_view HostOf(absl::string_view authority) {
  if (absl::StartsWith(authority, "[")) {
    const size_t close = authority.find(']');
    return close == absl::string_view::npos ? authority
                                            : authority.substr(0, close + 1);
  }
  return authority.substr(0, authority.rfind(':'));
}

bool IsLoopbackHost(absl::string_view host) {
  return host == "127.0.0.1" || host == "[::1]" || host == "localhost";
}

bool IsLoopbackHttpUrl(absl::string_view url) {
  absl::string_view authority;
  if (absl::StartsWith(url, "http://")) {
    authority = url.substr(7);
  } else if (absl::StartsWith(url, "https://")) {
    authority = url.substr(8);
  } else {
    return false;
  }
  authority = authority.substr(0, authority.find_first_of("/?#"));
  if (authority.find('@') != absl::string_view::npos) return false;
  return IsLoopbackHost(HostOf(authority));
}

// Tally of the results of all batches. Failures are grouped by reason so
// that a broken run says why in a few lines.
struct Tally {
  int64_t ok = 0;
  uint64_t bytes = 0;
  std::map<std::string, int64_t> failures;

  void Fail(const std::string& reason, int64_t count = 1) {
    const int64_t before = failures[reason];
    failures[reason] += count;
    if (before < kMaxReportedFailures) {
      std::fprintf(stderr, "fetchd_load: request failed: %s\n", reason.c_str());
    }
  }
};

// The results of one call of `size` requests, checked as they come: each
// index once, status 200 and no error.
class CallResults {
 public:
  explicit CallResults(int64_t size) : seen_(static_cast<size_t>(size)) {}

  void Add(const fetch::v1::FetchEvent& event, Tally& tally) {
    for (const fetch::v1::FetchResult& result : event.results()) {
      if (result.index() >= seen_.size() || seen_[result.index()]) {
        tally.Fail(
            absl::StrCat("unexpected or repeated index ", result.index()));
        continue;
      }
      seen_[result.index()] = true;
      ++received_;
      if (result.error() != fetch::v1::ERROR_KIND_NONE) {
        tally.Fail(absl::StrCat(fetch::v1::ErrorKind_Name(result.error()), ": ",
                                result.error_message()));
      } else if (result.status() != 200) {
        tally.Fail(absl::StrCat("HTTP status ", result.status()));
      } else {
        ++ok_;
        tally.bytes += result.body().size();
      }
    }
  }

  // The call of `method` ended with `status`: its ok results count only
  // if it ended cleanly.
  void End(const grpc::Status& status, absl::string_view method,
           Tally& tally) const {
    const auto size = static_cast<int64_t>(seen_.size());
    if (!status.ok()) {
      tally.Fail(
          absl::StrCat(method, " RPC ended with status ", status.error_code(),
                       ": ", status.error_message()),
          size - received_ + ok_);
      return;
    }
    tally.ok += ok_;
    if (received_ < size) {
      tally.Fail(absl::StrCat("no result for a request of the ", method),
                 size - received_);
    }
  }

 private:
  std::vector<bool> seen_;
  int64_t received_ = 0;
  int64_t ok_ = 0;
};

// Runs one FetchBatch call and adds its results to `tally`.
void RunBatch(fetch::v1::FetchService::Stub& stub,
              const fetch::v1::BatchRequest& batch, Tally& tally) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(absl::GetFlag(FLAGS_deadline_s)));
  std::unique_ptr<grpc::ClientReader<fetch::v1::FetchEvent>> reader =
      stub.FetchBatch(&context, batch);

  CallResults results(batch.requests_size());
  fetch::v1::FetchEvent event;
  while (reader->Read(&event)) results.Add(event, tally);
  results.End(reader->Finish(), "FetchBatch", tally);
}

// The messages of a FetchStream carrying `requests` requests for `url`,
// `message_size` per message, the options in the first.
std::vector<fetch::v1::FetchStreamRequest> MakeMessages(
    const std::string& url, const std::string& ca_pem, int64_t requests,
    int32_t concurrency, int32_t message_size) {
  std::vector<fetch::v1::FetchStreamRequest> messages;
  for (int64_t first = 0; first < requests; first += message_size) {
    fetch::v1::FetchStreamRequest& message = messages.emplace_back();
    if (first == 0) {
      message.mutable_options()->set_max_concurrency(
          static_cast<uint32_t>(concurrency));
    }
    const int64_t count = std::min<int64_t>(message_size, requests - first);
    for (int64_t i = 0; i < count; ++i) {
      fetch::v1::FetchRequest* request = message.add_requests();
      request->set_url(url);
      if (!ca_pem.empty()) request->mutable_tls()->set_ca_pem(ca_pem);
    }
  }
  return messages;
}

// Runs one FetchStream call of `messages` (`requests` requests in all): a
// writer thread sends them (fetchd's flow control holds it back), this
// thread reads and checks the results.
void RunStream(fetch::v1::FetchService::Stub& stub,
               const std::vector<fetch::v1::FetchStreamRequest>& messages,
               int64_t requests, Tally& tally) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::seconds(absl::GetFlag(FLAGS_deadline_s)));
  std::unique_ptr<grpc::ClientReaderWriter<fetch::v1::FetchStreamRequest,
                                           fetch::v1::FetchEvent>>
      stream = stub.FetchStream(&context);
  std::thread writer([&] {
    for (const fetch::v1::FetchStreamRequest& message : messages) {
      if (!stream->Write(message)) break;
    }
    stream->WritesDone();
  });
  CallResults results(requests);
  fetch::v1::FetchEvent event;
  while (stream->Read(&event)) results.Add(event, tally);
  writer.join();
  results.End(stream->Finish(), "FetchStream", tally);
}

std::vector<fetch::v1::BatchRequest> MakeBatches(const std::string& url,
                                                 const std::string& ca_pem,
                                                 int64_t requests,
                                                 int64_t batch_size,
                                                 int32_t concurrency) {
  std::vector<fetch::v1::BatchRequest> batches;
  for (int64_t first = 0; first < requests; first += batch_size) {
    fetch::v1::BatchRequest& batch = batches.emplace_back();
    batch.set_max_concurrency(static_cast<uint32_t>(concurrency));
    const int64_t count = std::min(batch_size, requests - first);
    batch.mutable_requests()->Reserve(static_cast<int>(count));
    for (int64_t i = 0; i < count; ++i) {
      fetch::v1::FetchRequest* request = batch.add_requests();
      request->set_url(url);
      if (!ca_pem.empty()) request->mutable_tls()->set_ca_pem(ca_pem);
    }
  }
  return batches;
}

int Run() {
  const std::string server = absl::GetFlag(FLAGS_server);
  const std::string url = absl::GetFlag(FLAGS_url);
  const int64_t requests = absl::GetFlag(FLAGS_requests);
  const int32_t concurrency = absl::GetFlag(FLAGS_concurrency);
  int64_t batch_size = absl::GetFlag(FLAGS_batch_size);
  if (batch_size == 0) batch_size = requests;
  if (requests <= 0 || concurrency <= 0 || batch_size <= 0 ||
      batch_size > INT32_MAX || absl::GetFlag(FLAGS_connect_timeout_s) <= 0 ||
      absl::GetFlag(FLAGS_deadline_s) <= 0) {
    std::fprintf(stderr,
                 "fetchd_load: --requests, --concurrency, --batch_size and "
                 "timeouts must be positive\n");
    return kExitUsage;
  }
  if (!IsLoopbackHost(HostOf(server))) {
    std::fprintf(stderr,
                 "fetchd_load: --server '%s' is not a loopback HOST:PORT; "
                 "benchmarks stay local\n",
                 server.c_str());
    return kExitUsage;
  }
  if (!IsLoopbackHttpUrl(url)) {
    std::fprintf(
        stderr,
        "fetchd_load: --url '%s' is not an http(s):// URL on a loopback "
        "host; benchmarks stay local\n",
        url.c_str());
    return kExitUsage;
  }

  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxReceiveMessageBytes);
  // An http_proxy in the environment must not redirect a loopback bench.
  args.SetInt(GRPC_ARG_ENABLE_HTTP_PROXY, 0);
  std::shared_ptr<grpc::Channel> channel = grpc::CreateCustomChannel(
      server, grpc::InsecureChannelCredentials(), args);
  const int32_t connect_timeout_s = absl::GetFlag(FLAGS_connect_timeout_s);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() +
                                 std::chrono::seconds(connect_timeout_s))) {
    std::fprintf(stderr,
                 "fetchd_load: cannot connect to fetchd at %s within %d s; "
                 "is it running?\n",
                 server.c_str(), connect_timeout_s);
    return kExitNoServer;
  }
  std::unique_ptr<fetch::v1::FetchService::Stub> stub =
      fetch::v1::FetchService::NewStub(channel);

  std::string ca_pem;
  if (const std::string cacert = absl::GetFlag(FLAGS_cacert); !cacert.empty()) {
    std::ifstream in(cacert, std::ios::binary);
    std::ostringstream pem;
    pem << in.rdbuf();
    if (!in || pem.str().empty()) {
      std::fprintf(stderr, "fetchd_load: cannot read --cacert %s\n",
                   cacert.c_str());
      return kExitUsage;
    }
    ca_pem = pem.str();
  }
  const bool stream = absl::GetFlag(FLAGS_stream);
  const int32_t message_size = absl::GetFlag(FLAGS_message_size);
  if (message_size <= 0) {
    std::fprintf(stderr, "fetchd_load: --message_size must be positive\n");
    return kExitUsage;
  }
  std::vector<fetch::v1::BatchRequest> batches;
  std::vector<fetch::v1::FetchStreamRequest> messages;
  if (stream) {
    messages = MakeMessages(url, ca_pem, requests, concurrency, message_size);
  } else {
    batches = MakeBatches(url, ca_pem, requests, batch_size, concurrency);
  }
  Tally tally;
  const auto start = std::chrono::steady_clock::now();
  if (stream) RunStream(*stub, messages, requests, tally);
  for (const fetch::v1::BatchRequest& batch : batches) {
    RunBatch(*stub, batch, tally);
  }
  const std::chrono::duration<double> elapsed =
      std::chrono::steady_clock::now() - start;

  for (const auto& [reason, count] : tally.failures) {
    std::fprintf(stderr, "fetchd_load: %lld x %s\n",
                 static_cast<long long>(count), reason.c_str());
  }
  std::printf("%s\n", absl::StrFormat(
                          R"({"requests":%d,"ok":%d,"seconds":%.6f,"bytes":%d,)"
                          R"("peak_rss_kib":%d})",
                          requests, tally.ok, elapsed.count(), tally.bytes,
                          fetchd::bench::PeakRssKib())
                          .c_str());
  std::fflush(stdout);
  return tally.ok == requests ? 0 : kExitFailed;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "fetchd_load --server HOST:PORT --url URL --requests N --concurrency C "
      "[--batch_size K]\nLoad client for the fetchd benchmark.");
  absl::ParseCommandLine(argc, argv);
  return Run();
}
