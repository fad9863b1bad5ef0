// Microbenchmarks of the curl worker's scheduling hot path: a job queued in
// core::HostScheduler, taken by Next() (per-host and batch slots), released
// when its attempt ends. One host (the single-target benchmark), many hosts
// (a crawler), and several callers sharing one host (the fairness path).
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "service/core/batch.h"
#include "service/core/fetch_job.h"
#include "service/core/host_scheduler.h"

namespace fetchd::core {
namespace {

// Batch is abstract; the scheduler never delivers.
class NullBatch final : public Batch {
 public:
  explicit NullBatch(const Options& options) : Batch(options, nullptr) {}
  void Deliver(fetch::v1::FetchResult /*result*/,
               bool /*holds_window*/) override {}
};

const absl::Time kNow = absl::FromUnixSeconds(1000);

std::unique_ptr<FetchJob> Job(const std::shared_ptr<Batch>& batch,
                              const std::string& host_key, uint32_t index) {
  auto job = std::make_unique<FetchJob>();
  job->batch = batch;
  job->index = index;
  job->host_key = host_key;
  job->queue_timeout = absl::Seconds(60);
  return job;
}

// Enqueues `jobs` jobs over `hosts` hosts from `callers` callers (one batch
// each), then starts and finishes all of them; reports time per job.
void RunScheduler(benchmark::State& state, int hosts, int callers) {
  const int jobs = static_cast<int>(state.range(0));
  std::vector<std::string> keys;
  for (int h = 0; h < hosts; ++h) {
    keys.push_back(absl::StrCat("http://host", h, ".test:80"));
  }
  for (auto _ : state) {
    state.PauseTiming();
    HostScheduler scheduler({/*max_per_host=*/64, /*max_in_flight=*/1024});
    std::vector<std::shared_ptr<Batch>> batches;
    for (int c = 0; c < callers; ++c) {
      Batch::Options options;
      options.max_concurrency = 1 << 20;
      options.window = 1 << 20;
      options.caller = absl::StrCat("caller", c);
      batches.push_back(std::make_shared<NullBatch>(options));
    }
    std::vector<std::unique_ptr<FetchJob>> queued;
    queued.reserve(jobs);
    for (int i = 0; i < jobs; ++i) {
      queued.push_back(
          Job(batches[i % callers], keys[i % hosts], static_cast<uint32_t>(i)));
    }
    state.ResumeTiming();
    for (auto& job : queued) scheduler.Enqueue(std::move(job), kNow);
    int done = 0;
    while (done < jobs) {
      std::vector<std::unique_ptr<FetchJob>> started;
      while (std::unique_ptr<FetchJob> job = scheduler.Next(kNow)) {
        started.push_back(std::move(job));
      }
      for (auto& job : started) {
        if (!scheduler.Release(job->host_key)) state.SkipWithError("Release");
        job->batch->ReleaseConcurrency();
        job->batch->ReleaseWindow();
        ++done;
      }
      benchmark::DoNotOptimize(done);
    }
  }
  state.SetItemsProcessed(state.iterations() * jobs);
}

void BM_SchedulerOneHost(benchmark::State& state) { RunScheduler(state, 1, 1); }
void BM_SchedulerManyHosts(benchmark::State& state) {
  RunScheduler(state, 1000, 1);
}
void BM_SchedulerFairCallers(benchmark::State& state) {
  RunScheduler(state, 1, 8);
}

BENCHMARK(BM_SchedulerOneHost)->Arg(20000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SchedulerManyHosts)->Arg(20000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SchedulerFairCallers)->Arg(20000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace fetchd::core

BENCHMARK_MAIN();
