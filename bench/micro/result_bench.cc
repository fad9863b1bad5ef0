// Microbenchmarks of the result path: building a FetchResult the way a
// transfer does (status, nginx-like headers, six timings, addresses, body),
// coalescing finished results into one FetchEvent as a batch's stream does,
// and serializing the event (what gRPC does before each write).
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "benchmark/benchmark.h"
#include "fetch/v1/fetch.pb.h"

namespace {

using fetch::v1::FetchEvent;
using fetch::v1::FetchResult;

void SetMillis(google::protobuf::Duration* d, int64_t us) {
  d->set_seconds(us / 1000000);
  d->set_nanos(static_cast<int32_t>((us % 1000000) * 1000));
}

FetchResult MakeResult(uint32_t index, const std::string& body) {
  FetchResult r;
  r.set_index(index);
  r.set_id(absl::StrCat("r", index));
  r.set_final_url("http://127.0.0.1:8080/1k");
  r.set_status(200);
  static const char* const kHeaders[][2] = {
      {"Server", "nginx/1.22.1"},
      {"Date", "Sun, 22 Nov 2026 12:00:00 GMT"},
      {"Content-Type", "application/octet-stream"},
      {"Content-Length", "1024"},
      {"Last-Modified", "Sun, 22 Nov 2026 11:59:00 GMT"},
      {"Connection", "keep-alive"},
      {"ETag", "\"6570a1b2-400\""},
      {"Accept-Ranges", "bytes"}};
  for (const auto& [name, value] : kHeaders) {
    fetch::v1::Header* h = r.add_headers();
    h->set_name(name);
    h->set_value(value);
  }
  r.set_body(body);
  r.set_attempts(1);
  fetch::v1::Timings* t = r.mutable_timings();
  SetMillis(t->mutable_queue_wait(), 12);
  SetMillis(t->mutable_dns(), 3);
  SetMillis(t->mutable_connect(), 0);
  SetMillis(t->mutable_tls(), 0);
  SetMillis(t->mutable_first_byte(), 140);
  SetMillis(t->mutable_total(), 160);
  r.set_bytes_received(body.size());
  r.set_remote_address("127.0.0.1:8080");
  r.set_http_version("1.1");
  r.set_connection_reused(true);
  return r;
}

// range(0): body bytes.
void BM_BuildResult(benchmark::State& state) {
  const std::string body(static_cast<size_t>(state.range(0)), 'x');
  uint32_t i = 0;
  for (auto _ : state) {
    FetchResult r = MakeResult(i++, body);
    benchmark::DoNotOptimize(r);
  }
  state.SetItemsProcessed(state.iterations());
}

// range(0): body bytes; range(1): results per event. Per result: moving it
// into the event (Swap, as the stream does), sizing and serializing.
void BM_CoalesceAndSerialize(benchmark::State& state) {
  const std::string body(static_cast<size_t>(state.range(0)), 'x');
  const int per_event = static_cast<int>(state.range(1));
  std::vector<FetchResult> results;
  for (int i = 0; i < per_event; ++i) results.push_back(MakeResult(i, body));
  std::string wire;
  FetchEvent event;
  for (auto _ : state) {
    state.PauseTiming();
    std::vector<FetchResult> ready = results;
    event.Clear();
    state.ResumeTiming();
    for (FetchResult& r : ready) event.add_results()->Swap(&r);
    wire.clear();
    event.SerializeToString(&wire);
    benchmark::DoNotOptimize(wire.data());
  }
  state.SetItemsProcessed(state.iterations() * per_event);
  state.SetBytesProcessed(state.iterations() *
                          static_cast<int64_t>(wire.size()));
}

BENCHMARK(BM_BuildResult)->Arg(1024)->Arg(100 * 1024);
BENCHMARK(BM_CoalesceAndSerialize)
    ->Args({1024, 1})
    ->Args({1024, 16})
    ->Args({100 * 1024, 1})
    ->Args({100 * 1024, 10});

}  // namespace

BENCHMARK_MAIN();
