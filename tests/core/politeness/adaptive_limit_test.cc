#include "service/core/politeness/adaptive_limit.h"

#include "gtest/gtest.h"

namespace fetchd::core::politeness {
namespace {

// Records `n` results of `signal`.
void RecordN(AdaptiveLimit& limit, LoadSignal signal, int n) {
  for (int i = 0; i < n; ++i) limit.Record(signal);
}

TEST(AdaptiveLimitTest, StartsAtTheMaximumAndNeverExceedsIt) {
  AdaptiveLimit limit(8);
  EXPECT_EQ(limit.limit(), 8);
  EXPECT_TRUE(limit.Idle());
  RecordN(limit, LoadSignal::kSuccess, 100);
  EXPECT_EQ(limit.limit(), 8);
}

TEST(AdaptiveLimitTest, OverloadHalvesOncePerWindow) {
  AdaptiveLimit limit(8);
  EXPECT_TRUE(limit.Record(LoadSignal::kOverload));
  EXPECT_EQ(limit.limit(), 4);
  EXPECT_FALSE(limit.Idle());
  // The other 7 attempts in flight at the decrease answer: one halving.
  for (int i = 0; i < 7; ++i) {
    EXPECT_FALSE(limit.Record(LoadSignal::kOverload));
  }
  EXPECT_EQ(limit.limit(), 4);
  // After that window, overload halves again, down to 1 and no lower.
  EXPECT_TRUE(limit.Record(LoadSignal::kOverload));
  EXPECT_EQ(limit.limit(), 2);
  RecordN(limit, LoadSignal::kOverload, 3);  // its window
  EXPECT_EQ(limit.limit(), 2);
  EXPECT_TRUE(limit.Record(LoadSignal::kOverload));
  EXPECT_EQ(limit.limit(), 1);
  RecordN(limit, LoadSignal::kOverload, 10);
  EXPECT_EQ(limit.limit(), 1);
}

TEST(AdaptiveLimitTest, SuccessesRaiseByOnePerLimitSuccesses) {
  AdaptiveLimit limit(8);
  RecordN(limit, LoadSignal::kOverload, 8);  // 8 -> 4, window used up
  ASSERT_EQ(limit.limit(), 4);
  RecordN(limit, LoadSignal::kSuccess, 3);
  EXPECT_EQ(limit.limit(), 4);
  EXPECT_TRUE(limit.Record(LoadSignal::kSuccess));
  EXPECT_EQ(limit.limit(), 5);
  RecordN(limit, LoadSignal::kSuccess, 4);
  EXPECT_EQ(limit.limit(), 5);
  limit.Record(LoadSignal::kSuccess);
  EXPECT_EQ(limit.limit(), 6);
  RecordN(limit, LoadSignal::kSuccess, 6 + 7);
  EXPECT_EQ(limit.limit(), 8);
  EXPECT_TRUE(limit.Idle());
}

TEST(AdaptiveLimitTest, NeutralChangesNothingAndOverloadResetsTheCount) {
  AdaptiveLimit limit(4);
  RecordN(limit, LoadSignal::kOverload, 4);  // 4 -> 2
  ASSERT_EQ(limit.limit(), 2);
  limit.Record(LoadSignal::kSuccess);
  RecordN(limit, LoadSignal::kNeutral, 50);
  EXPECT_EQ(limit.limit(), 2);
  limit.Record(LoadSignal::kSuccess);
  EXPECT_EQ(limit.limit(), 3);
  limit.Record(LoadSignal::kSuccess);
  limit.Record(LoadSignal::kSuccess);
  EXPECT_TRUE(limit.Record(LoadSignal::kOverload));  // 3 -> 1
  EXPECT_EQ(limit.limit(), 1);
}

}  // namespace
}  // namespace fetchd::core::politeness
