// Microbenchmarks of the curl worker's scheduling hot path: a job queued in
// core::HostScheduler, taken by Next() (the politeness limiter's admission
// and batch slots), released when its attempt ends. One host (the
// single-target benchmark), many hosts (a crawler), and several callers
// sharing one host (the fairness path), with the default rule only; and
// many hosts with one politeness rule each, rate limits on (the issue's
// acceptance: within 2x of the default rule's cost per request).
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "benchmark/benchmark.h"
#include "service/core/batch.h"
#include "service/core/fetch_job.h"
#include "service/core/host_scheduler.h"
#include "service/core/politeness/local_host_limiter.h"
#include "service/core/politeness/rule_set.h"

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

// The default rule, 64 at once per host and no queue bound (all jobs are
// queued at once); with `rated`, one rule per host (`hosts` of them) with a
// rate of 1000/s, burst 16.
std::shared_ptr<const politeness::RuleSet> Rules(int hosts, bool rated) {
  politeness::HostRule default_rule;
  default_rule.max_concurrency = 64;
  default_rule.max_queue = std::numeric_limits<int>::max();
  std::vector<politeness::HostRule> rules;
  if (rated) {
    for (int h = 0; h < hosts; ++h) {
      politeness::HostRule rule;
      rule.name = absl::StrCat("rule", h);
      rule.hosts = {absl::StrCat("host", h, ".test")};
      rule.max_concurrency = 64;
      rule.max_queue = std::numeric_limits<int>::max();
      rule.rate = 1000;
      rule.burst = 16;
      rules.push_back(std::move(rule));
    }
  }
  absl::StatusOr<politeness::RuleSet> set =
      politeness::RuleSet::Create(std::move(default_rule), std::move(rules));
  if (!set.ok()) return nullptr;
  return std::make_shared<const politeness::RuleSet>(*std::move(set));
}

// Enqueues `jobs` jobs over `hosts` hosts from `callers` callers (one batch
// each), then starts and finishes all of them, moving the clock to the
// scheduler's next event when rate limits hold every host; reports time per
// job.
void RunScheduler(benchmark::State& state, int hosts, int callers,
                  bool rated = false) {
  const int jobs = static_cast<int>(state.range(0));
  std::vector<std::string> keys;
  for (int h = 0; h < hosts; ++h) {
    keys.push_back(absl::StrCat("http://host", h, ".test:80"));
  }
  const std::shared_ptr<const politeness::RuleSet> rules = Rules(hosts, rated);
  if (rules == nullptr) {
    state.SkipWithError("RuleSet::Create");
    return;
  }
  for (auto _ : state) {
    state.PauseTiming();
    politeness::LocalHostLimiter limiter(rules, {});
    HostScheduler scheduler({/*max_in_flight=*/1024}, limiter);
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
    if (!scheduler.TakeRejected().empty()) state.SkipWithError("rejected");
    absl::Time now = kNow;
    politeness::AttemptResult ok;
    ok.status = 200;
    int done = 0;
    while (done < jobs) {
      std::vector<std::unique_ptr<FetchJob>> started;
      while (std::unique_ptr<FetchJob> job = scheduler.Next(now)) {
        started.push_back(std::move(job));
      }
      if (started.empty()) {
        const absl::Time next = scheduler.NextEvent();
        if (next <= now || next == absl::InfiniteFuture()) {
          state.SkipWithError("stuck");
          break;
        }
        now = next;
        continue;
      }
      for (auto& job : started) {
        if (!scheduler.Release(*job, ok, now)) state.SkipWithError("Release");
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
// 1,000 hosts, each with its own rule (1,000 rules) and a rate limit.
void BM_SchedulerManyHostsRated(benchmark::State& state) {
  RunScheduler(state, 1000, 1, /*rated=*/true);
}

BENCHMARK(BM_SchedulerOneHost)->Arg(20000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SchedulerManyHosts)->Arg(20000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SchedulerFairCallers)->Arg(20000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_SchedulerManyHostsRated)
    ->Arg(20000)
    ->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace fetchd::core

BENCHMARK_MAIN();
