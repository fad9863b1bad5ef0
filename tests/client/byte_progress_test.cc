#include "client/byte_progress.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fetchd::client {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::Optional;
using ::testing::StartsWith;

const absl::Time kStart = absl::FromUnixSeconds(1000);

TEST(FormatBytesTest, BinaryUnits) {
  EXPECT_EQ(FormatBytes(0), "0 B");
  EXPECT_EQ(FormatBytes(1023), "1023 B");
  EXPECT_EQ(FormatBytes(1536), "1.50 KiB");
  EXPECT_EQ(FormatBytes(12 << 20), "12.0 MiB");
  EXPECT_EQ(FormatBytes(uint64_t{1} << 30), "1.00 GiB");
}

TEST(ByteProgressTest, KnownSizeShowsPercentRateAndEta) {
  ByteProgress progress(uint64_t{100} << 20, kStart, /*terminal=*/false);
  std::optional<std::string> line =
      progress.Update(uint64_t{25} << 20, kStart + absl::Seconds(5));
  EXPECT_THAT(line, Optional(std::string("fetchctl: 25.0 MiB of 100.0 MiB "
                                         "(25.0%)  5.00 MiB/s  ETA 15s\n")));
}

TEST(ByteProgressTest, UnknownSizeShowsBytesAndRateOnly) {
  ByteProgress progress(std::nullopt, kStart, /*terminal=*/false);
  std::optional<std::string> line =
      progress.Update(2048, kStart + absl::Seconds(2));
  EXPECT_THAT(line, Optional(std::string("fetchctl: 2.00 KiB  1.00 KiB/s\n")));
}

TEST(ByteProgressTest, PlainLinesAtMostOncePerSecond) {
  ByteProgress progress(std::nullopt, kStart, /*terminal=*/false);
  EXPECT_TRUE(progress.Update(1, kStart).has_value());
  EXPECT_FALSE(progress.Update(2, kStart + absl::Milliseconds(900)));
  EXPECT_TRUE(progress.Update(3, kStart + absl::Seconds(1)).has_value());
  // The final line is always written.
  EXPECT_THAT(progress.Finish(4, kStart + absl::Milliseconds(1100)),
              StartsWith("fetchctl: 4 B"));
}

TEST(ByteProgressTest, TerminalRedrawsInPlaceAndEndsTheLine) {
  ByteProgress progress(uint64_t{1000}, kStart, /*terminal=*/true);
  std::optional<std::string> first =
      progress.Update(500, kStart + absl::Seconds(1));
  ASSERT_TRUE(first.has_value());
  EXPECT_THAT(*first, StartsWith("\r500 B of 1000 B (50.0%)"));
  EXPECT_THAT(*first, Not(HasSubstr("\n")));
  EXPECT_FALSE(progress.Update(600, kStart + absl::Milliseconds(1050)));
  const std::string last = progress.Finish(1000, kStart + absl::Seconds(2));
  EXPECT_THAT(last, StartsWith("\r1000 B of 1000 B (100.0%)"));
  EXPECT_THAT(last, Not(HasSubstr("ETA")));
  EXPECT_EQ(last.back(), '\n');
}

}  // namespace
}  // namespace fetchd::client
