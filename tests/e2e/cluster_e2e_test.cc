// Cluster-wide politeness end to end: three real fetchd processes share a
// real redis-server (limiter mode REDIS) and fetch from local target
// servers that record concurrency and arrival times per host (127.0.0.1,
// .2 and .3 are three hosts). Checks the issue's guarantees: the limits
// hold across replicas at steady load and throughout Redis and replica
// failures, a pause set by one replica holds at all, Redis is off the
// request path (calls per request, waits while Redis is paused).
#include <curl/curl.h>
#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "client/fetch_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/cluster/redis_connection.h"
#include "service/common/proto_duration.h"
#include "tests/e2e/fetchd_launcher.h"
#include "tests/testing/redis_server.h"
#include "tests/testing/test_http_server.h"

namespace fetchd::testing {
namespace {

using ::fetch::v1::BatchRequest;
using ::fetch::v1::FetchEvent;
using ::fetch::v1::FetchResult;

constexpr int kReplicas = 3;
constexpr absl::Duration kLeaseTtl = absl::Milliseconds(2400);
constexpr absl::Duration kCommandTimeout = absl::Milliseconds(50);

size_t WriteToString(char* data, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(data, size * n);
  return size * n;
}

// GET http://127.0.0.1:PORT/metrics; empty on failure.
std::string Scrape(int port) {
  std::string body;
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return body;
  const std::string url = absl::StrCat("http://127.0.0.1:", port, "/metrics");
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, WriteToString);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 2000L);
  curl_easy_setopt(curl, CURLOPT_NOPROXY, "*");
  if (curl_easy_perform(curl) != CURLE_OK) body.clear();
  curl_easy_cleanup(curl);
  return body;
}

// The sum of the samples of `name` whose labels contain `labels` (e.g.
// "mode=\"redis\""; empty: all).
double Sample(const std::string& text, absl::string_view name,
              absl::string_view labels = "") {
  double sum = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (!absl::ConsumePrefix(&line, name)) continue;
    if (line.empty() || (line[0] != '{' && line[0] != ' ')) continue;
    if (!labels.empty() && !absl::StrContains(line, labels)) continue;
    const size_t space = line.rfind(' ');
    double value = 0;
    if (space != absl::string_view::npos &&
        absl::SimpleAtod(line.substr(space + 1), &value)) {
      sum += value;
    }
  }
  return sum;
}

// Most arrivals in any window [t, t + w) starting at an arrival.
int MostInWindow(const std::vector<absl::Time>& arrivals, absl::Duration w) {
  int most = 0;
  for (size_t i = 0, j = 0; i < arrivals.size(); ++i) {
    while (j < arrivals.size() && arrivals[j] < arrivals[i] + w) ++j;
    most = std::max(most, static_cast<int>(j - i));
  }
  return most;
}

int CountBetween(const std::vector<absl::Time>& arrivals, absl::Time from,
                 absl::Time to) {
  return static_cast<int>(
      std::count_if(arrivals.begin(), arrivals.end(),
                    [&](absl::Time t) { return t >= from && t < to; }));
}

// One FetchBatch in a thread.
class BatchRun {
 public:
  // `retries`: false makes each request one attempt.
  BatchRun(client::FetchClient* client, const std::string& url, int n,
           bool retries = true) {
    thread_ = std::thread([this, client, url, n, retries] {
      BatchRequest batch;
      for (int i = 0; i < n; ++i) {
        auto* r = batch.add_requests();
        r->set_id(absl::StrCat(i));
        r->set_url(url);
        if (!retries) r->mutable_retry()->set_max_attempts(1);
      }
      status_ = client->FetchBatch(
          batch,
          [&](const FetchEvent& event) {
            absl::MutexLock lock(&mu_);
            for (const FetchResult& result : event.results()) {
              results_.push_back(result);
            }
          },
          absl::Now() + absl::Seconds(120));
    });
  }
  ~BatchRun() { Join(); }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }
  const absl::Status& status() const { return status_; }
  std::vector<FetchResult> results() {
    absl::MutexLock lock(&mu_);
    return results_;
  }

 private:
  std::thread thread_;
  absl::Status status_;
  absl::Mutex mu_;
  std::vector<FetchResult> results_ ABSL_GUARDED_BY(mu_);
};

class ClusterE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(redis_.Start().ok());
    ASSERT_TRUE(busy_.Start().ok());
    ASSERT_TRUE(rated_.Start().ok());
    ASSERT_TRUE(paused_.Start().ok());
    std::string dir_template =
        (std::filesystem::temp_directory_path() / "fetchd_cluster.XXXXXX")
            .string();
    ASSERT_NE(mkdtemp(dir_template.data()), nullptr);
    dir_ = dir_template;
  }
  void TearDown() override {
    for (auto& r : replicas_) {
      if (r.process != nullptr) r.process->Signal(SIGKILL);
    }
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  // The config every replica runs: the busy host (127.0.0.1) allows
  // `busy_limit` attempts at once, the rated one (127.0.0.2) 20 starts a
  // second with a burst of 2, the third (127.0.0.3) 4 at once.
  std::string Config(int busy_limit) const {
    return absl::StrCat(R"({"limiter": {"mode": "REDIS",
        "redis": {"address": ")",
                        redis_.address(),
                        R"(", "command_timeout": "0.05s"},
        "expected_replicas": 3, "lease_ttl": "2.4s", "rate_horizon": "1.5s"},
      "politeness": {"rules": [
        {"name": "busy", "hosts": [")",
                        busy_.Url(""), R"("], "max_concurrency": )", busy_limit,
                        R"(},
        {"name": "rated", "hosts": [")",
                        rated_.Url(""), R"("],
         "max_concurrency": 12, "rate": 20, "burst": 2},
        {"name": "paused", "hosts": [")",
                        paused_.Url(""), R"("], "max_concurrency": 4}]}})");
  }

  struct Replica {
    std::unique_ptr<Subprocess> process;
    std::unique_ptr<client::FetchClient> client;
    int metrics_port = 0;
  };

  void StartReplicas(int busy_limit) {
    const std::string config = dir_ + "/fetchd.json";
    std::ofstream(config) << Config(busy_limit);
    replicas_.resize(kReplicas);
    for (int i = 0; i < kReplicas; ++i) {
      const std::string metrics_file = absl::StrCat(dir_, "/metrics", i);
      absl::StatusOr<RunningFetchd> fetchd = StartFetchdProcess(
          FETCHD_BIN, absl::StrCat(dir_, "/port", i),
          {"--config=" + config, "--policy_allow=127.0.0.0/8", "--workers=1",
           "--log_level=warn", "--metrics_port_file=" + metrics_file},
          {absl::StrCat("POD_NAME=replica-", i)}, absl::Seconds(20));
      ASSERT_TRUE(fetchd.ok()) << fetchd.status();
      replicas_[i].process = std::move(fetchd->process);
      std::ifstream(metrics_file) >> replicas_[i].metrics_port;
      ASSERT_GT(replicas_[i].metrics_port, 0);
      absl::StatusOr<std::unique_ptr<client::FetchClient>> client =
          client::FetchClient::Connect(fetchd->address);
      ASSERT_TRUE(client.ok()) << client.status();
      replicas_[i].client = std::move(*client);
    }
    // The first heartbeat made a new epoch: one lease TTL of learning.
    ASSERT_TRUE(AwaitMode({0, 1, 2}, "redis", absl::Seconds(15)));
  }

  std::string Metrics(int i) { return Scrape(replicas_[i].metrics_port); }
  bool InMode(int i, absl::string_view mode) {
    return Sample(Metrics(i), "fetch_limiter_mode",
                  absl::StrCat("mode=\"", mode, "\"")) == 1;
  }
  bool AwaitMode(const std::vector<int>& which, absl::string_view mode,
                 absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    for (;;) {
      bool all = true;
      for (int i : which) all = all && InMode(i, mode);
      if (all) return true;
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
  // Redis commands sent, summed over `which`.
  double RedisCalls(const std::vector<int>& which) {
    double calls = 0;
    for (int i : which) {
      calls += Sample(Metrics(i), "fetch_limiter_redis_calls_total");
    }
    return calls;
  }
  // Waits until `server` has seen `n` requests for `path`.
  static bool AwaitArrivals(const TestHttpServer& server,
                            absl::string_view path, int n,
                            absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (server.RequestCount(path) < n) {
      if (absl::Now() > deadline) return false;
      absl::SleepFor(absl::Milliseconds(5));
    }
    return true;
  }
  static void ExpectAllOk(BatchRun& run, int n, const std::string& what) {
    run.Join();
    EXPECT_TRUE(run.status().ok()) << what << ": " << run.status();
    const std::vector<FetchResult> results = run.results();
    EXPECT_EQ(results.size(), static_cast<size_t>(n)) << what;
    int ok = 0;
    std::string first_error;
    for (const FetchResult& r : results) {
      if (r.status() == 200) {
        ++ok;
      } else if (first_error.empty()) {
        first_error = r.ShortDebugString();
      }
    }
    EXPECT_EQ(ok, n) << what << "; first failure: " << first_error;
  }

  RedisServer redis_;
  TestHttpServer busy_{TestHttpServerOptions{"127.0.0.1", 64, nullptr}};
  TestHttpServer rated_{TestHttpServerOptions{"127.0.0.2", 64, nullptr}};
  TestHttpServer paused_{TestHttpServerOptions{"127.0.0.3", 64, nullptr}};
  std::string dir_;
  std::vector<Replica> replicas_;
};

// Uneven steady load through all three replicas: the busy host never sees
// more than its cluster-wide limit, yet gets at least 80 % of what that
// limit allows (a replica whose batch ends gives its leases back); the
// rated host's arrivals stay within rate * w + burst (+1) in every window
// and reach 80 % of the rate; Redis calls per request stay <= 0.2.
TEST_F(ClusterE2eTest, SteadyLoadHoldsTheClusterLimits) {
  constexpr int kBusyLimit = 12;
  ASSERT_NO_FATAL_FAILURE(StartReplicas(kBusyLimit));
  const double calls_before = RedisCalls({0, 1, 2});
  const int busy_n[kReplicas] = {900, 300, 150};
  constexpr int kRatedEach = 40;
  std::vector<std::unique_ptr<BatchRun>> runs;
  for (int i = 0; i < kReplicas; ++i) {
    runs.push_back(std::make_unique<BatchRun>(
        replicas_[i].client.get(), busy_.Url("/delay?ms=50"), busy_n[i]));
    runs.push_back(std::make_unique<BatchRun>(replicas_[i].client.get(),
                                              rated_.Url("/ok"), kRatedEach));
  }
  for (int i = 0; i < kReplicas; ++i) {
    ExpectAllOk(*runs[2 * i], busy_n[i], absl::StrCat("busy, replica ", i));
    ExpectAllOk(*runs[2 * i + 1], kRatedEach,
                absl::StrCat("rated, replica ", i));
  }
  const double calls_after = RedisCalls({0, 1, 2});

  EXPECT_LE(busy_.tracker().max(), kBusyLimit);
  const std::vector<absl::Time> busy = busy_.Arrivals("/delay");
  ASSERT_EQ(busy.size(), 1350u);
  // 12 at once, 50 ms each: 240/s at most.
  const double busy_rate =
      (busy.size() - 1) / absl::ToDoubleSeconds(busy.back() - busy.front());
  EXPECT_GE(busy_rate, 0.8 * 240) << "busy host: " << busy_rate << "/s";

  const std::vector<absl::Time> rated = rated_.Arrivals("/ok");
  ASSERT_EQ(rated.size(), 3u * kRatedEach);
  for (absl::Duration w :
       {absl::Milliseconds(250), absl::Milliseconds(500), absl::Seconds(1)}) {
    EXPECT_LE(MostInWindow(rated, w), 20 * absl::ToDoubleSeconds(w) + 2 + 1)
        << "window " << w;
  }
  // At steady load: the first half second (the burst) and the last second
  // (replicas that finish leave send times unused) left out.
  const absl::Time steady_from = rated.front() + absl::Milliseconds(500);
  const absl::Time steady_to = rated.back() - absl::Seconds(1);
  ASSERT_GT(steady_to - steady_from, absl::Seconds(2));
  const double rated_rate = CountBetween(rated, steady_from, steady_to) /
                            absl::ToDoubleSeconds(steady_to - steady_from);
  EXPECT_GE(rated_rate, 0.8 * 20) << "rated host: " << rated_rate << "/s";

  // Per request fetched (the starts counter is published a round late).
  const double calls = calls_after - calls_before;
  const double requests = 1350 + 3 * kRatedEach;
  EXPECT_LE(calls / requests, 0.2) << calls << " calls";
}

// A 429 with Retry-After: 2 answered to one replica's request pauses the
// host at every replica: after the time it takes a pause to travel
// (sync_interval, 250 ms, plus a round trip) nothing reaches the host
// until the 2 s are over.
TEST_F(ClusterE2eTest, APauseSetByOneReplicaHoldsAtAll) {
  ASSERT_NO_FATAL_FAILURE(StartReplicas(12));
  const std::string url = paused_.Url(
      "/sequence?key=p&codes=200,200,200,200,200,200,200,200,200,200,429,200"
      "&retry_after=2");
  std::vector<std::unique_ptr<BatchRun>> runs;
  for (int i = 0; i < kReplicas; ++i) {
    runs.push_back(std::make_unique<BatchRun>(replicas_[i].client.get(), url,
                                              20, /*retries=*/false));
  }
  int throttled = 0;
  for (auto& run : runs) {
    run->Join();
    ASSERT_TRUE(run->status().ok()) << run->status();
    for (const FetchResult& r : run->results()) {
      if (r.status() == 429) ++throttled;
    }
  }
  EXPECT_EQ(throttled, 1);
  const std::vector<absl::Time> arrivals = paused_.Arrivals("/sequence");
  ASSERT_EQ(arrivals.size(), 60u);
  const absl::Time throttled_at = arrivals[10];
  // The others came after the pause.
  EXPECT_EQ(CountBetween(arrivals, throttled_at + absl::Milliseconds(500),
                         throttled_at + absl::Seconds(2)),
            0);
  EXPECT_GT(CountBetween(arrivals, throttled_at + absl::Seconds(2),
                         absl::InfiniteFuture()),
            0);
}

// Redis SIGKILLed mid-run: every replica is degraded within command
// timeout + 1 s, enforces floor(6 / 3) = 2 so the host still sees at most 6,
// and no request fails. Redis back (empty: a new epoch): learning, then
// REDIS again; the limit held throughout.
TEST_F(ClusterE2eTest, RedisKilledAndRestartedKeepsTheLimits) {
  constexpr int kLimit = 6;
  ASSERT_NO_FATAL_FAILURE(StartReplicas(kLimit));
  constexpr int kEach = 400;
  std::vector<std::unique_ptr<BatchRun>> runs;
  for (int i = 0; i < kReplicas; ++i) {
    runs.push_back(std::make_unique<BatchRun>(
        replicas_[i].client.get(), busy_.Url("/delay?ms=50"), kEach));
  }
  ASSERT_TRUE(AwaitArrivals(busy_, "/delay", 100, absl::Seconds(30)));
  std::vector<double> learned(kReplicas);
  for (int i = 0; i < kReplicas; ++i) {
    learned[i] = Sample(Metrics(i), "fetch_limiter_mode_transitions_total",
                        "mode=\"learning\"");
  }
  const absl::Time killed = absl::Now();
  redis_.Kill();
  ASSERT_TRUE(AwaitMode({0, 1, 2}, "degraded", absl::Seconds(5)));
  // The poll adds up to one scrape round (~20 ms per replica) to the bound.
  EXPECT_LE(absl::Now() - killed,
            kCommandTimeout + absl::Seconds(1) + absl::Milliseconds(150));
  ASSERT_TRUE(AwaitArrivals(busy_, "/delay", busy_.RequestCount("/delay") + 60,
                            absl::Seconds(30)));
  ASSERT_TRUE(redis_.Start().ok());
  ASSERT_TRUE(AwaitMode({0, 1, 2}, "redis", absl::Seconds(20)));
  for (int i = 0; i < kReplicas; ++i) {
    EXPECT_GE(Sample(Metrics(i), "fetch_limiter_mode_transitions_total",
                     "mode=\"learning\""),
              learned[i] + 1)
        << "replica " << i;
  }
  for (int i = 0; i < kReplicas; ++i) {
    ExpectAllOk(*runs[i], kEach, absl::StrCat("replica ", i));
  }
  EXPECT_LE(busy_.tracker().max(), kLimit);
}

// A replica SIGKILLed while it holds leases: the survivors stay within the
// limit while its leases live, and have the whole limit again within one
// lease TTL (their throughput is then at least 80 % of the three
// replicas' before the kill).
TEST_F(ClusterE2eTest, AKilledReplicasLeasesExpireWithinOneTtl) {
  constexpr int kLimit = 6;
  ASSERT_NO_FATAL_FAILURE(StartReplicas(kLimit));
  constexpr int kEach = 600;
  std::vector<std::unique_ptr<BatchRun>> runs;
  for (int i = 0; i < kReplicas; ++i) {
    runs.push_back(std::make_unique<BatchRun>(
        replicas_[i].client.get(), busy_.Url("/delay?ms=50"), kEach));
  }
  ASSERT_TRUE(AwaitArrivals(busy_, "/delay", 60, absl::Seconds(30)));
  const absl::Time steady_from = absl::Now();
  absl::SleepFor(absl::Seconds(1));
  ASSERT_GT(Sample(Metrics(2), "fetch_limiter_leases_held"), 0);
  const absl::Time killed = absl::Now();
  replicas_[2].process->Signal(SIGKILL);
  runs[2]->Join();  // fails: its fetchd is gone
  ExpectAllOk(*runs[0], kEach, "replica 0");
  ExpectAllOk(*runs[1], kEach, "replica 1");
  EXPECT_LE(busy_.tracker().max(), kLimit);
  const std::vector<absl::Time> arrivals = busy_.Arrivals("/delay");
  // Full throughput: that of the whole limit with three replicas, before
  // the kill (each start pays fetchd's and the server's own time on top of
  // the 50 ms, so it is below 6 / 50 ms).
  const double full = CountBetween(arrivals, steady_from, killed) /
                      absl::ToDoubleSeconds(killed - steady_from);
  const absl::Time from = killed + kLeaseTtl + absl::Milliseconds(300);
  const absl::Time to = from + absl::Seconds(1);
  ASSERT_GT(arrivals.back(), to) << "the load ended too early to measure";
  EXPECT_GE(CountBetween(arrivals, from, to), 0.8 * full)
      << "before the kill: " << full << "/s";
}

// CLIENT PAUSE 2000 on Redis: no request waits on Redis longer than the
// command timeout budget (a round that times out turns the replica
// degraded and wakes what waited). Each replica sends one request at a
// time, far below the limit, so any queue wait is a wait for Redis.
TEST_F(ClusterE2eTest, APausedRedisDelaysNoRequestBeyondTheCommandTimeout) {
  // A limit no replica comes near: a wait here is a wait for Redis, never
  // for a lease (a replica short of leases waits for its next sync).
  ASSERT_NO_FATAL_FAILURE(StartReplicas(300));
  std::atomic<bool> stop{false};
  absl::Mutex mu;
  std::vector<absl::Duration> waits;
  std::vector<std::thread> callers;
  for (int i = 0; i < kReplicas; ++i) {
    callers.emplace_back([&, i] {
      while (!stop.load()) {
        fetch::v1::FetchRequest request;
        request.set_url(busy_.Url("/ok"));
        absl::StatusOr<FetchResult> result = replicas_[i].client->Fetch(
            request, absl::Now() + absl::Seconds(10));
        absl::MutexLock lock(&mu);
        waits.push_back(result.ok() ? FromProto(result->timings().queue_wait())
                                    : absl::InfiniteDuration());
      }
    });
  }
  absl::SleepFor(absl::Milliseconds(300));
  {
    cluster::RedisConnection admin(
        cluster::RedisAddress{"", 0, redis_.socket_path()}, "",
        absl::Seconds(1), absl::Seconds(1));
    ASSERT_TRUE(admin.Connect().ok());
    ASSERT_TRUE(admin.Command({"CLIENT", "PAUSE", "2000"}).ok());
  }
  const int before = busy_.RequestCount("/ok");
  absl::SleepFor(absl::Milliseconds(2500));
  const int during = busy_.RequestCount("/ok") - before;
  stop = true;
  for (auto& t : callers) t.join();
  EXPECT_GT(during, 30) << "requests kept flowing while Redis was paused";
  absl::MutexLock lock(&mu);
  ASSERT_FALSE(waits.empty());
  const absl::Duration longest = *std::max_element(waits.begin(), waits.end());
  // One command timeout, one more if a round was already waiting on Redis,
  // and scheduling slack on this loaded 2-core machine.
  EXPECT_LE(longest, 2 * kCommandTimeout + absl::Milliseconds(150));
}

}  // namespace
}  // namespace fetchd::testing
