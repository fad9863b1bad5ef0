// End-to-end tests through the real binaries: a fetchd child process on
// 127.0.0.1:0, driven by fetchctl child processes, fetching from an
// in-process TestHttpServer. Every wait on a child is bounded, so a hang
// fails the test. Operations (config sources, logs, health, reflection) are
// in operations_e2e_test.cc.
#include <signal.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "fetch/v1/config.pb.h"
#include "fetch/v1/fetch.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/e2e/fetchd_e2e_fixture.h"
#include "tests/e2e/subprocess.h"
#include "tests/testing/test_http_server.h"

namespace fetchd::testing {
namespace {

using ::fetch::v1::FetchResult;
using ::testing::HasSubstr;

// Parses fetchctl's stdout: one JSON FetchResult per line.
absl::StatusOr<std::vector<FetchResult>> ParseResults(
    const std::string& stdout_text) {
  std::vector<FetchResult> results;
  for (absl::string_view line :
       absl::StrSplit(stdout_text, '\n', absl::SkipEmpty())) {
    FetchResult& result = results.emplace_back();
    const auto status = google::protobuf::util::JsonStringToMessage(
        google::protobuf::StringPiece(line.data(), line.size()), &result);
    if (!status.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("not a JSON FetchResult: ", line));
    }
  }
  return results;
}

// Results by index; fails the test on a duplicate or out-of-range index.
std::vector<FetchResult> ByIndex(const std::vector<FetchResult>& results) {
  std::vector<FetchResult> by_index(results.size());
  std::vector<bool> seen(results.size(), false);
  for (const FetchResult& result : results) {
    const uint32_t index = result.index();
    if (index >= results.size() || seen[index]) {
      ADD_FAILURE() << "unexpected or repeated index " << index;
      continue;
    }
    seen[index] = true;
    by_index[index] = result;
  }
  return by_index;
}

std::optional<std::string> HeaderValue(const FetchResult& result,
                                       absl::string_view name) {
  for (const fetch::v1::Header& header : result.headers()) {
    if (absl::EqualsIgnoreCase(header.name(), name)) {
      return header.value();
    }
  }
  return std::nullopt;
}

TEST_F(FetchdE2eTest, GetReportsSuccessAndConnectFailurePerUrl) {
  ASSERT_NO_FATAL_FAILURE(StartFetchd({"--workers=2"}));
  const std::string ok_url = http_.Url("/bytes?n=100");
  const std::string refused_url =
      absl::StrCat("http://127.0.0.1:", UnusedLoopbackPort(), "/");

  const ExitInfo info = RunFetchctl({"get", ok_url, refused_url});

  EXPECT_EQ(info.exit_code, 1) << Describe(info);
  absl::StatusOr<std::vector<FetchResult>> results =
      ParseResults(info.stdout_text);
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 2u) << info.stdout_text;
  const std::vector<FetchResult> by_index = ByIndex(*results);

  const FetchResult& ok = by_index[0];
  EXPECT_EQ(ok.index(), 0u);
  EXPECT_EQ(ok.id(), "");  // fetchctl get sets no ids.
  EXPECT_EQ(ok.status(), 200u);
  EXPECT_EQ(ok.error(), fetch::v1::ERROR_KIND_NONE) << ok.error_message();
  EXPECT_EQ(ok.final_url(), ok_url);
  EXPECT_TRUE(ok.body().empty());  // Only with --body.

  const FetchResult& refused = by_index[1];
  EXPECT_EQ(refused.index(), 1u);
  EXPECT_EQ(refused.id(), "");
  EXPECT_EQ(refused.status(), 0u);
  EXPECT_EQ(refused.error(), fetch::v1::ERROR_KIND_CONNECT)
      << refused.error_message();
  EXPECT_FALSE(refused.error_message().empty());
}

TEST_F(FetchdE2eTest, BatchFileRunsEveryLineOnce) {
  ASSERT_NO_FATAL_FAILURE(StartFetchd({"--workers=2"}));
  constexpr int kUrls = 50;
  const std::string post_body = std::string("posted \0 bytes\n", 15);
  std::string input;
  for (int i = 0; i < kUrls; ++i) {
    absl::StrAppend(&input, http_.Url(absl::StrCat("/bytes?n=", i)), "\n");
    if (i == kUrls / 2) {
      // Skipped lines take no index.
      absl::StrAppend(&input, "# a comment\n", "\n", "   \n");
    }
  }
  absl::StrAppend(&input, R"({"id": "echo", "url": ")", http_.Url("/echo"),
                  R"(", "method": "POST", "body": ")",
                  absl::Base64Escape(post_body), "\"}\n");
  const std::string path = WriteFile("batch.txt", input);

  const ExitInfo info = RunFetchctl({"--body", "batch", "-f", path});

  EXPECT_EQ(info.exit_code, 0) << Describe(info);
  absl::StatusOr<std::vector<FetchResult>> results =
      ParseResults(info.stdout_text);
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), kUrls + 1u);
  const std::vector<FetchResult> by_index = ByIndex(*results);
  for (int i = 0; i < kUrls; ++i) {
    SCOPED_TRACE(absl::StrCat("index ", i));
    EXPECT_EQ(by_index[i].index(), static_cast<uint32_t>(i));
    EXPECT_EQ(by_index[i].status(), 200u);
    EXPECT_EQ(by_index[i].body(), std::string(static_cast<size_t>(i), 'x'));
  }
  const FetchResult& echo = by_index[kUrls];
  EXPECT_EQ(echo.index(), static_cast<uint32_t>(kUrls));
  EXPECT_EQ(echo.id(), "echo");
  EXPECT_EQ(echo.status(), 200u);
  EXPECT_EQ(echo.body(), post_body);
  EXPECT_EQ(HeaderValue(echo, "X-Echo-Method"), "POST");
  EXPECT_EQ(http_.RequestCount("/bytes"), kUrls);
  EXPECT_EQ(http_.RequestCount("/echo", "POST"), 1);
}

TEST_F(FetchdE2eTest, InvalidUrlIsAFailedResult) {
  ASSERT_NO_FATAL_FAILURE(StartFetchd({"--workers=2"}));

  const ExitInfo info = RunFetchctl({"get", "http://x:99999/"});

  EXPECT_EQ(info.exit_code, 1) << Describe(info);
  absl::StatusOr<std::vector<FetchResult>> results =
      ParseResults(info.stdout_text);
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 1u) << info.stdout_text;
  EXPECT_EQ((*results)[0].error(), fetch::v1::ERROR_KIND_INVALID_REQUEST);
  EXPECT_THAT((*results)[0].error_message(), HasSubstr("url: "));
  EXPECT_EQ((*results)[0].status(), 0u);
}

TEST_F(FetchdE2eTest, FetchctlUnknownFlagIsUsageError) {
  ASSERT_NO_FATAL_FAILURE(StartFetchd({"--workers=2"}));

  const ExitInfo info =
      RunFetchctl({"--no-such-flag", "get", http_.Url("/ok")});

  EXPECT_EQ(info.exit_code, 2) << Describe(info);
  EXPECT_THAT(info.stderr_text, HasSubstr("--no-such-flag"));
  EXPECT_EQ(info.stdout_text, "");
  EXPECT_EQ(http_.TotalRequests(), 0);
}

TEST_F(FetchdE2eTest, PerHostLimitHoldsAcrossWorkers) {
  ASSERT_NO_FATAL_FAILURE(StartFetchd({"--workers=4", "--max_per_host=3"}));
  constexpr int kUrls = 60;
  std::string input;
  for (int i = 0; i < kUrls; ++i) {
    absl::StrAppend(&input, http_.Url("/delay?ms=20"), "\n");
  }
  const std::string path = WriteFile("delays.txt", input);

  const ExitInfo info = RunFetchctl({"batch", "-f", path});

  EXPECT_EQ(info.exit_code, 0) << Describe(info);
  absl::StatusOr<std::vector<FetchResult>> results =
      ParseResults(info.stdout_text);
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), static_cast<size_t>(kUrls));
  for (const FetchResult& result : *results) {
    EXPECT_EQ(result.status(), 200u) << result.error_message();
  }
  EXPECT_EQ(http_.RequestCount("/delay"), kUrls);
  EXPECT_LE(http_.tracker().max(), 3);
  // The limit, not a lack of concurrency, is what held it there.
  EXPECT_GE(http_.tracker().max(), 2);
}

TEST_F(FetchdE2eTest, OutOfRangeConfigValueIsRejected) {
  const std::string path = WriteFile("workers.json", R"({"workers": 1000})");

  const ExitInfo info = RunFetchd({"--config=" + path, "--check_config"});

  EXPECT_EQ(info.exit_code, 2) << Describe(info);
  EXPECT_THAT(info.stderr_text, HasSubstr("workers"));
}

TEST_F(FetchdE2eTest, UnknownConfigFieldIsRejected) {
  const std::string path = WriteFile("unknown.json", R"({"nope": 1})");

  const ExitInfo info = RunFetchd({"--config=" + path, "--check_config"});

  EXPECT_EQ(info.exit_code, 2) << Describe(info);
  EXPECT_THAT(info.stderr_text, HasSubstr("nope"));
}

TEST_F(FetchdE2eTest, ValidConfigPassesCheck) {
  const std::string path = WriteFile(
      "valid.json",
      R"({"listen": "127.0.0.1:0", "workers": 2, "limits": {"maxPerHost": 4}})");

  const ExitInfo info = RunFetchd({"--config=" + path, "--check_config"});

  EXPECT_EQ(info.exit_code, 0) << Describe(info);
  EXPECT_THAT(info.stdout_text, HasSubstr("config OK"));
}

TEST_F(FetchdE2eTest, PrintConfigShowsEffectiveConfig) {
  const ExitInfo info = RunFetchd({"--print_config", "--max_per_host=7"});

  EXPECT_EQ(info.exit_code, 0) << Describe(info);
  EXPECT_THAT(info.stdout_text, HasSubstr("\"max_per_host\""));
  fetch::v1::ServerConfig config;
  ASSERT_TRUE(
      google::protobuf::util::JsonStringToMessage(info.stdout_text, &config)
          .ok())
      << info.stdout_text;
  EXPECT_EQ(config.limits().max_per_host(), 7u);
  EXPECT_GT(config.workers(), 0u);  // 0 ("one per core") is resolved.
}

TEST_F(FetchdE2eTest, SigtermDrainsRunningBatchAndRefusesNewCalls) {
  ASSERT_NO_FATAL_FAILURE(StartFetchd({"--workers=2", "--drain_seconds=10"}));
  constexpr int kStreams = 5;
  std::string input;
  for (int i = 0; i < kStreams; ++i) {
    // 300 bytes, one every 10 ms: about 3 s each.
    absl::StrAppend(&input, http_.Url("/drip?bytes=300&interval_ms=10"), "\n");
  }
  const std::string path = WriteFile("drips.txt", input);
  absl::StatusOr<std::unique_ptr<Subprocess>> batch =
      Subprocess::Start(FetchctlArgv({"batch", "-f", path}));
  ASSERT_TRUE(batch.ok()) << batch.status();
  // TestHttpServer can await no streams but not n streams; poll it,
  // boundedly.
  ASSERT_TRUE(PollUntil([&] { return http_.ActiveStreams() == kStreams; },
                        absl::Seconds(10)))
      << "streams started: " << http_.ActiveStreams();

  ASSERT_TRUE(fetchd_->Signal(SIGTERM));
  // fetchd logs this (on stdout) once sigwait() returns, just before it
  // starts draining.
  ASSERT_TRUE(fetchd_->AwaitStdout("draining", absl::Seconds(10)))
      << Describe(fetchd_->Wait(absl::ZeroDuration()));
  const ExitInfo late = RunFetchctl({"get", http_.Url("/ok")});
  const ExitInfo batch_info = (*batch)->Wait(kProcessTimeout);
  const ExitInfo fetchd_info = fetchd_->Wait(kProcessTimeout);

  // A call started during the drain fails as an RPC: UNAVAILABLE, or
  // refused once the listener is closed.
  EXPECT_EQ(late.exit_code, 3) << Describe(late);
  EXPECT_EQ(late.stdout_text, "");
  EXPECT_EQ(http_.RequestCount("/ok"), 0);
  // The batch in flight finished during the drain.
  EXPECT_EQ(batch_info.exit_code, 0) << Describe(batch_info);
  absl::StatusOr<std::vector<FetchResult>> results =
      ParseResults(batch_info.stdout_text);
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), static_cast<size_t>(kStreams));
  for (const FetchResult& result : *results) {
    EXPECT_EQ(result.status(), 200u) << result.error_message();
    EXPECT_EQ(result.error(), fetch::v1::ERROR_KIND_NONE)
        << result.error_message();
  }
  EXPECT_EQ(fetchd_info.exit_code, 0) << Describe(fetchd_info);
  EXPECT_FALSE(fetchd_info.timed_out);
}

TEST_F(FetchdE2eTest, DrainGraceOverCancelsWhatIsLeftAndExits) {
  ASSERT_NO_FATAL_FAILURE(StartFetchd({"--workers=2", "--drain_seconds=1"}));
  constexpr int kStreams = 3;
  std::string input;
  for (int i = 0; i < kStreams; ++i) {
    absl::StrAppend(&input, http_.Url("/stall?ms=30000"), "\n");
  }
  const std::string path = WriteFile("stalls.txt", input);
  absl::StatusOr<std::unique_ptr<Subprocess>> batch =
      Subprocess::Start(FetchctlArgv({"batch", "-f", path}));
  ASSERT_TRUE(batch.ok()) << batch.status();
  ASSERT_TRUE(PollUntil([&] { return http_.ActiveStreams() == kStreams; },
                        absl::Seconds(10)));

  const absl::Time signalled = absl::Now();
  ASSERT_TRUE(fetchd_->Signal(SIGTERM));
  const ExitInfo fetchd_info = fetchd_->Wait(kProcessTimeout);
  const ExitInfo batch_info = (*batch)->Wait(kProcessTimeout);

  // The grace period (1 s) ran out: fetchd said so, cancelled the call and
  // its transfers, and exited 0 well before the stalls would have ended.
  EXPECT_EQ(fetchd_info.exit_code, 0) << Describe(fetchd_info);
  EXPECT_FALSE(fetchd_info.timed_out);
  EXPECT_LT(absl::Now() - signalled, absl::Seconds(15));
  EXPECT_NE(fetchd_info.stdout_text.find("drain grace period over"),
            std::string::npos)
      << fetchd_info.stdout_text;
  // Every request still has its result: CANCELLED (exit 1, not a hang and
  // not a lost URL).
  EXPECT_EQ(batch_info.exit_code, 1) << Describe(batch_info);
  EXPECT_FALSE(batch_info.timed_out);
  absl::StatusOr<std::vector<FetchResult>> results =
      ParseResults(batch_info.stdout_text);
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), static_cast<size_t>(kStreams));
  for (const FetchResult& result : *results) {
    EXPECT_EQ(result.error(), fetch::v1::ERROR_KIND_CANCELLED);
  }
  EXPECT_TRUE(http_.WaitForNoActiveStreams(absl::Seconds(5)));
}

}  // namespace
}  // namespace fetchd::testing
