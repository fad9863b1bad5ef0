// `fetchctl get URL -o FILE` through the real binaries: the body streamed
// into a file (FetchRequest.stream_body), progress on stderr, raw bodies,
// and fetchd's own resident memory while it streams 1 GiB.
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "fetch/v1/fetch.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/e2e/fetchd_e2e_fixture.h"
#include "tests/testing/test_http_server.h"

namespace fetchd::testing {
namespace {

using ::fetch::v1::FetchResult;
using ::testing::HasSubstr;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in),
                     std::istreambuf_iterator<char>());
}

FetchResult ParseResult(const std::string& stdout_text) {
  FetchResult result;
  const std::string line = stdout_text.substr(0, stdout_text.find('\n'));
  EXPECT_TRUE(google::protobuf::util::JsonStringToMessage(line, &result).ok())
      << stdout_text;
  return result;
}

// A "VmRSS:"/"VmHWM:" value of /proc/PID/status in bytes; -1 if unreadable.
int64_t ProcStatusBytes(pid_t pid, absl::string_view field) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (!absl::StartsWith(line, field)) continue;
    std::vector<std::string> parts =
        absl::StrSplit(line, ' ', absl::SkipWhitespace());
    int64_t kib = 0;
    if (parts.size() >= 2 && absl::SimpleAtoi(parts[1], &kib)) {
      return kib << 10;
    }
  }
  return -1;
}

class DownloadE2eTest : public FetchdE2eTest {};

TEST_F(DownloadE2eTest, GetWithOutputWritesTheDecodedBodyToTheFile) {
  ASSERT_NO_FATAL_FAILURE(StartFetchd({"--workers=2"}));
  const std::string path = (dir_ / "body").string();
  const ExitInfo info =
      RunFetchctl({"get", http_.Url("/encoded?encoding=br&bytes=3000000"), "-o",
                   path, "--chunk-bytes", "65536"});
  ASSERT_EQ(info.exit_code, 0) << Describe(info);
  EXPECT_EQ(ReadAll(path), TestBodyPattern(3000000));
  const FetchResult result = ParseResult(info.stdout_text);
  EXPECT_EQ(result.status(), 200u);
  EXPECT_EQ(result.bytes_received(), 3000000u);
  EXPECT_TRUE(result.body().empty());
}

TEST_F(DownloadE2eTest, RawKeepsTheBodyAsSent) {
  ASSERT_NO_FATAL_FAILURE(StartFetchd({"--workers=2"}));
  const std::string path = (dir_ / "body.gz").string();
  const ExitInfo info = RunFetchctl(
      {"get", "--raw", http_.Url("/encoded?encoding=gzip&bytes=100000"), "-o",
       path});
  ASSERT_EQ(info.exit_code, 0) << Describe(info);
  const std::string body = ReadAll(path);
  EXPECT_EQ(body.substr(0, 2), "\x1f\x8b");
  EXPECT_LT(body.size(), 100000u);
}

// Not a terminal: plain progress lines, about one a second, then a summary.
TEST_F(DownloadE2eTest, ProgressLinesWhenStderrIsNotATerminal) {
  ASSERT_NO_FATAL_FAILURE(StartFetchd({"--workers=2"}));
  const std::string path = (dir_ / "drip").string();
  const ExitInfo info =
      RunFetchctl({"get", "--progress",
                   http_.Url("/drip?bytes=25&interval_ms=100"), "-o", path});
  ASSERT_EQ(info.exit_code, 0) << Describe(info);
  EXPECT_EQ(ReadAll(path), std::string(25, 'x'));
  int progress_lines = 0;
  for (absl::string_view line : absl::StrSplit(info.stderr_text, '\n')) {
    if (absl::StartsWith(line, "fetchctl: ") && absl::StrContains(line, "/s") &&
        !absl::StrContains(line, "wrote")) {
      ++progress_lines;
    }
  }
  EXPECT_GE(progress_lines, 2) << info.stderr_text;
  EXPECT_THAT(info.stderr_text, HasSubstr("fetchctl: wrote 25 B to " + path));
  EXPECT_EQ(info.stderr_text.find('\r'), std::string::npos);
}

TEST_F(DownloadE2eTest, OutputTakesOneUrl) {
  ASSERT_NO_FATAL_FAILURE(StartFetchd({"--workers=2"}));
  const ExitInfo info = RunFetchctl(
      {"get", http_.Url("/ok"), http_.Url("/ok"), "-o", (dir_ / "x").string()});
  EXPECT_EQ(info.exit_code, 2) << Describe(info);
  EXPECT_THAT(info.stderr_text, HasSubstr("-o/--output: writes one body"));
}

TEST_F(DownloadE2eTest, AFailedDownloadExitsOne) {
  ASSERT_NO_FATAL_FAILURE(StartFetchd({"--workers=2"}));
  const std::string path = (dir_ / "capped").string();
  const ExitInfo info =
      RunFetchctl({"get", "--max-filesize", "100000",
                   http_.Url("/bytes?n=1000000"), "-o", path});
  EXPECT_EQ(info.exit_code, 1) << Describe(info);
  EXPECT_THAT(info.stderr_text, HasSubstr("ERROR_KIND_BODY_TOO_LARGE"));
  EXPECT_LE(ReadAll(path).size(), 100000u);
}

// 1 GiB through the real fetchd into /dev/null: fetchd's peak resident
// memory (VmHWM) stays within 32 MiB of what it used before the download.
TEST_F(DownloadE2eTest, OneGibThroughFetchdInBoundedMemory) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "ASan's quarantine and shadow memory distort RSS";
#endif
  ASSERT_NO_FATAL_FAILURE(StartFetchd({"--workers=2"}));
  // Warm up: gRPC's and curl's buffers, the threads' arenas.
  ASSERT_EQ(
      RunFetchctl({"get", http_.Url("/bytes?n=64000000"), "-o", "/dev/null"})
          .exit_code,
      0);
  const pid_t pid = fetchd_->pid();
  const int64_t before = ProcStatusBytes(pid, "VmRSS:");
  ASSERT_GT(before, 0);
  constexpr int64_t kBody = int64_t{1} << 30;
  const absl::Time start = absl::Now();
  const ExitInfo info =
      RunFetchctl({"get", http_.Url(absl::StrCat("/bytes?n=", kBody)), "-o",
                   "/dev/null", "--progress"});
  const absl::Duration took = absl::Now() - start;
  ASSERT_EQ(info.exit_code, 0) << Describe(info);
  EXPECT_EQ(ParseResult(info.stdout_text).bytes_received(),
            static_cast<uint64_t>(kBody));
  const int64_t peak = ProcStatusBytes(pid, "VmHWM:");
  std::cerr << "1 GiB through fetchd in " << took << ": fetchd RSS "
            << before / (1 << 20) << " MiB before, peak " << peak / (1 << 20)
            << " MiB\n";
  EXPECT_LT(peak - before, int64_t{32} << 20);
}

}  // namespace
}  // namespace fetchd::testing
