// `fetchctl batch` on FetchStream, through the real binaries: input read as
// it comes (a FIFO the test writes, like `producer | fetchctl batch`),
// results printed before the input ends, and any number of requests with
// bounded memory in both processes.
#include <signal.h>
#include <sys/stat.h>

#include <atomic>
#include <cstdint>
#include <fstream>
#include <iostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "client/fetch_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/fetchd_e2e_fixture.h"

namespace fetchd::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// The value of `key` (e.g. "VmHWM:") in /proc/PID/status, in KiB; -1 if
// missing.
int64_t ProcStatusKib(pid_t pid, absl::string_view key) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    absl::string_view rest = line;
    if (!absl::ConsumePrefix(&rest, key)) continue;
    rest = absl::StripAsciiWhitespace(rest);
    absl::ConsumeSuffix(&rest, " kB");
    int64_t kib = 0;
    if (absl::SimpleAtoi(rest, &kib)) return kib;
  }
  return -1;
}

// The "index" of each JSON result line of fetchctl's output (proto3 JSON
// leaves index 0 out).
std::vector<int64_t> ResultIndices(const std::string& stdout_text) {
  std::vector<int64_t> indices;
  for (absl::string_view line :
       absl::StrSplit(stdout_text, '\n', absl::SkipEmpty())) {
    int64_t index = 0;
    const size_t at = line.find("\"index\":");
    if (at != absl::string_view::npos) {
      absl::string_view rest = line.substr(at + 8);
      const size_t end = rest.find_first_of(",}");
      if (!absl::SimpleAtoi(rest.substr(0, end), &index)) index = -1;
    }
    indices.push_back(index);
  }
  return indices;
}

class StreamE2eTest : public FetchdE2eTest {
 protected:
  // A FIFO in the test's directory, for fetchctl's -f.
  std::string MakeFifo() {
    const std::string path = (dir_ / "input.fifo").string();
    EXPECT_EQ(mkfifo(path.c_str(), 0600), 0);
    return path;
  }
};

// A producer that writes one URL and waits gets that URL's result first:
// the test writes the second URL only once the first result is out.
TEST_F(StreamE2eTest, TheFirstResultArrivesBeforeTheInputEnds) {
  ASSERT_NO_FATAL_FAILURE(StartFetchd({"--workers=2"}));
  const std::string fifo = MakeFifo();
  absl::StatusOr<std::unique_ptr<Subprocess>> fetchctl =
      Subprocess::Start(FetchctlArgv({"batch", "-f", fifo}));
  ASSERT_TRUE(fetchctl.ok()) << fetchctl.status();
  {
    // Opens once fetchctl has opened its end.
    std::ofstream producer(fifo);
    producer << http_.Url("/bytes?n=7") << "\n" << std::flush;
    ASSERT_TRUE((*fetchctl)->AwaitStdout("bytes?n=7", kProcessTimeout))
        << Describe((*fetchctl)->Wait(absl::ZeroDuration()));
    // Only now does the second URL exist.
    EXPECT_EQ(http_.RequestCount("/bytes"), 1);
    producer << http_.Url("/bytes?n=9") << "\n" << std::flush;
  }
  const ExitInfo info = (*fetchctl)->Wait(kProcessTimeout);
  EXPECT_EQ(info.exit_code, 0) << Describe(info);
  EXPECT_THAT(ResultIndices(info.stdout_text),
              ::testing::UnorderedElementsAre(0, 1));
  EXPECT_THAT(info.stdout_text, HasSubstr("bytes?n=9"));
  EXPECT_EQ(http_.RequestCount("/bytes"), 2);
}

// 200,000 URLs from a generator: every index exactly once, and neither
// process grows with the input.
TEST_F(StreamE2eTest, TwoHundredThousandUrlsInBoundedMemory) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "ASan's quarantine and shadow memory distort RSS";
#endif
  constexpr int kUrls = 200000;
  ASSERT_NO_FATAL_FAILURE(StartFetchd({"--workers=2"}));
  const std::string fifo = MakeFifo();
  absl::StatusOr<std::unique_ptr<Subprocess>> fetchctl =
      Subprocess::Start(FetchctlArgv({"batch", "-f", fifo}));
  ASSERT_TRUE(fetchctl.ok()) << fetchctl.status();
  std::thread generator([&] {
    std::ofstream producer(fifo);
    const std::string url = http_.Url("/ok");
    for (int i = 0; i < kUrls; ++i) producer << url << "\n";
  });
  const ExitInfo info = (*fetchctl)->Wait(absl::Minutes(5));
  generator.join();
  ASSERT_EQ(info.exit_code, 0) << Describe(info);
  const std::vector<int64_t> indices = ResultIndices(info.stdout_text);
  ASSERT_EQ(indices.size(), static_cast<size_t>(kUrls));
  std::vector<bool> seen(kUrls, false);
  for (const int64_t index : indices) {
    ASSERT_TRUE(index >= 0 && index < kUrls) << index;
    ASSERT_FALSE(seen[index]) << "index " << index << " twice";
    seen[index] = true;
  }
  EXPECT_EQ(http_.RequestCount("/ok"), kUrls);
  const int64_t fetchd_hwm = ProcStatusKib(fetchd_->pid(), "VmHWM:");
  std::cout << "peak RSS: fetchctl " << info.max_rss_kib << " KiB, fetchd "
            << fetchd_hwm << " KiB\n";
  EXPECT_LE(info.max_rss_kib, 64 * 1024) << "fetchctl's peak RSS";
  EXPECT_GT(fetchd_hwm, 0);
  EXPECT_LE(fetchd_hwm, 128 * 1024) << "fetchd's peak RSS";
}

// A sender far faster than its target (100,000 requests to an endpoint
// that doesn't answer): fetchd reads only its window of them; the sender
// is held in Send() by flow control, and fetchd's memory stays small.
TEST_F(StreamE2eTest, AFastSenderIsHeldByFlowControl) {
  constexpr int kRequests = 100000;
  constexpr int kPerMessage = 100;
  constexpr int kPerHost = 4;
  ASSERT_NO_FATAL_FAILURE(
      StartFetchd({"--workers=2", "--stream_window=64",
                   absl::StrCat("--max_per_host=", kPerHost)}));
  absl::StatusOr<std::unique_ptr<client::FetchClient>> client =
      client::FetchClient::Connect(fetchd_address_, client::ClientOptions());
  ASSERT_TRUE(client.ok()) << client.status();
  std::unique_ptr<client::FetchStreamCall> stream =
      (*client)->OpenFetchStream();
  std::atomic<int> sent{0};
  std::atomic<bool> sender_done{false};
  std::thread sender([&] {
    const std::string url = http_.Url("/stall?ms=60000");
    for (int i = 0; i < kRequests; i += kPerMessage) {
      std::vector<fetch::v1::FetchRequest> requests(kPerMessage);
      for (fetch::v1::FetchRequest& request : requests) request.set_url(url);
      if (!stream->Send(std::move(requests)).ok()) break;
      sent.fetch_add(kPerMessage);
    }
    stream->WritesDone();
    sender_done = true;
  });
  // fetchd has read a window's worth and started what the host allows.
  ASSERT_TRUE(PollUntil([&] { return http_.ActiveStreams() == kPerHost; },
                        absl::Seconds(10)))
      << "active: " << http_.ActiveStreams();
  EXPECT_FALSE(sender_done.load());
  EXPECT_LT(sent.load(), kRequests);
  const int64_t fetchd_hwm = ProcStatusKib(fetchd_->pid(), "VmHWM:");
  EXPECT_GT(fetchd_hwm, 0);
#if !defined(__SANITIZE_ADDRESS__)
  EXPECT_LE(fetchd_hwm, 128 * 1024) << "fetchd's peak RSS";
#endif
  stream->Cancel();
  sender.join();
  fetch::v1::FetchEvent event;
  while (stream->Read(&event)) {
  }
  EXPECT_EQ(stream->Finish().code(), absl::StatusCode::kCancelled);
  EXPECT_LT(http_.RequestCount("/stall"), 1000);
}

// SIGTERM while the producer is still writing: the requests fetchd read
// finish and get their results; the rest of the input is refused with
// UNAVAILABLE (exit 3), and fetchd exits 0.
TEST_F(StreamE2eTest, SigtermEndsTheInputAfterTheResultsOfWhatWasRead) {
  constexpr int kSlow = 3;
  ASSERT_NO_FATAL_FAILURE(StartFetchd({"--workers=2", "--drain_seconds=20"}));
  const std::string fifo = MakeFifo();
  absl::StatusOr<std::unique_ptr<Subprocess>> fetchctl =
      Subprocess::Start(FetchctlArgv({"batch", "-f", fifo}));
  ASSERT_TRUE(fetchctl.ok()) << fetchctl.status();
  std::ofstream producer(fifo);
  for (int i = 0; i < kSlow; ++i) {
    // 300 bytes, one every 10 ms: about 3 s each.
    producer << http_.Url("/drip?bytes=300&interval_ms=10") << "\n";
  }
  producer << std::flush;
  ASSERT_TRUE(PollUntil([&] { return http_.ActiveStreams() == kSlow; },
                        absl::Seconds(10)))
      << "streams started: " << http_.ActiveStreams();
  ASSERT_TRUE(fetchd_->Signal(SIGTERM));
  ASSERT_TRUE(fetchd_->AwaitStdout("draining", absl::Seconds(10)))
      << Describe(fetchd_->Wait(absl::ZeroDuration()));
  // Written after the drain began: never read.
  producer << http_.Url("/ok") << "\n" << std::flush;
  const ExitInfo info = (*fetchctl)->Wait(kProcessTimeout);
  const ExitInfo fetchd_info = fetchd_->Wait(kProcessTimeout);
  EXPECT_EQ(info.exit_code, 3) << Describe(info);
  EXPECT_THAT(info.stderr_text, HasSubstr("UNAVAILABLE"));
  EXPECT_THAT(info.stderr_text, HasSubstr("another replica"));
  EXPECT_THAT(ResultIndices(info.stdout_text),
              ::testing::UnorderedElementsAre(0, 1, 2));
  EXPECT_THAT(info.stdout_text, Not(HasSubstr("\"error\"")));
  EXPECT_EQ(http_.RequestCount("/ok"), 0);
  EXPECT_EQ(fetchd_info.exit_code, 0) << Describe(fetchd_info);
}

// --ordered and --fail-fast keep their meaning on a stream.
TEST_F(StreamE2eTest, OrderedAndFailFastKeepTheirMeaning) {
  ASSERT_NO_FATAL_FAILURE(StartFetchd({"--workers=2"}));
  constexpr int kUrls = 12;
  std::string input;
  for (int i = 0; i < kUrls; ++i) {
    // Later lines answer sooner.
    absl::StrAppend(
        &input, http_.Url(absl::StrCat("/delay?ms=", 5 * (kUrls - i))), "\n");
  }
  const ExitInfo ordered =
      RunFetchctl({"--ordered", "--max-concurrency", "4", "batch", "-f",
                   WriteFile("ordered.txt", input)});
  EXPECT_EQ(ordered.exit_code, 0) << Describe(ordered);
  std::vector<int64_t> want(kUrls);
  for (int i = 0; i < kUrls; ++i) want[i] = i;
  EXPECT_EQ(ResultIndices(ordered.stdout_text), want);

  // The first URL fails at once; the others would take a minute.
  std::string failing = absl::StrCat("http://127.0.0.1:1/\n");
  for (int i = 0; i < 3; ++i) {
    absl::StrAppend(&failing, http_.Url("/stall?ms=60000"), "\n");
  }
  const ExitInfo fail_fast =
      RunFetchctl({"--fail-fast", "--retries", "0", "batch", "-f",
                   WriteFile("failing.txt", failing)});
  EXPECT_EQ(fail_fast.exit_code, 1) << Describe(fail_fast);
  EXPECT_EQ(ResultIndices(fail_fast.stdout_text).size(), 4u);
  EXPECT_THAT(fail_fast.stdout_text, HasSubstr("ERROR_KIND_CANCELLED"));
}

// A bad line stops the input: what was read before it has its results,
// then fetchctl exits 2 naming the line.
TEST_F(StreamE2eTest, ABadLineEndsTheInputAfterTheResultsBeforeIt) {
  ASSERT_NO_FATAL_FAILURE(StartFetchd({"--workers=2"}));
  const std::string path =
      WriteFile("input.txt", absl::StrCat(http_.Url("/ok"), "\n", "{not json\n",
                                          http_.Url("/ok"), "\n"));
  const ExitInfo info = RunFetchctl({"batch", "-f", path});
  EXPECT_EQ(info.exit_code, 2) << Describe(info);
  EXPECT_THAT(info.stderr_text, HasSubstr("line 2"));
  EXPECT_EQ(ResultIndices(info.stdout_text).size(), 1u);
  EXPECT_EQ(http_.RequestCount("/ok"), 1);
}

}  // namespace
}  // namespace fetchd::testing
