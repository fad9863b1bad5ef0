// Parsing /proc, on fixed samples, and reading this process's own values.
#include "service/metrics/process_stats.h"

#include "absl/time/clock.h"
#include "gtest/gtest.h"

namespace fetchd::metrics {
namespace {

TEST(ProcessStatsTest, ParsesStatWithSpacesAndParensInTheName) {
  const char* stat =
      "4242 (my (odd) proc) S 1 4242 4242 0 -1 4194560 1500 0 0 0 "
      "250 75 0 0 20 0 9 0 123456 987654321 2048 18446744073709551615 "
      "1 1 0 0 0 0 0 0 0 0 0 0 17 3 0 0 0 0 0\n";
  const auto parsed = ParseProcStat(stat);
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->utime_ticks, 250u);
  EXPECT_EQ(parsed->stime_ticks, 75u);
  EXPECT_EQ(parsed->start_ticks, 123456u);
}

TEST(ProcessStatsTest, RejectsMalformedStat) {
  EXPECT_FALSE(ParseProcStat("").has_value());
  EXPECT_FALSE(ParseProcStat("12 (x) S 1 2 3").has_value());
  EXPECT_FALSE(ParseProcStat("no parenthesis at all").has_value());
}

TEST(ProcessStatsTest, ParsesStatmAndBootTime) {
  EXPECT_EQ(ParseStatmResidentPages("5000 1234 300 10 0 900 0\n"), 1234u);
  EXPECT_FALSE(ParseStatmResidentPages("5000").has_value());
  EXPECT_EQ(ParseBootTime("cpu  1 2 3\nintr 5\nbtime 1700000000\nctxt 9\n"),
            1700000000u);
  EXPECT_FALSE(ParseBootTime("cpu 1 2 3\n").has_value());
}

TEST(ProcessStatsTest, ReadsThisProcess) {
  const ProcessStats stats = ReadProcessStats();
  ASSERT_TRUE(stats.cpu_seconds.has_value());
  ASSERT_TRUE(stats.resident_bytes.has_value());
  ASSERT_TRUE(stats.open_fds.has_value());
  EXPECT_GE(*stats.cpu_seconds, 0);
  EXPECT_GT(*stats.resident_bytes, 1 << 20);
  EXPECT_GE(*stats.open_fds, 3);  // stdin, stdout, stderr at least
  const auto start = ReadProcessStartTime();
  ASSERT_TRUE(start.has_value());
  const double now = absl::ToDoubleSeconds(absl::Now() - absl::UnixEpoch());
  EXPECT_LE(*start, now + 1);
  EXPECT_GT(*start, now - 3600);  // this test process started recently
}

}  // namespace
}  // namespace fetchd::metrics
