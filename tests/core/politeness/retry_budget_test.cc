#include "service/core/politeness/retry_budget.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fetchd::core::politeness {
namespace {

using ::testing::HasSubstr;

RetryBudgetConfig Config(double ratio, int min_retry_concurrency) {
  RetryBudgetConfig config;
  config.ratio = ratio;
  config.min_retry_concurrency = min_retry_concurrency;
  return config;
}

TEST(RetryBudgetTest, LimitIsTheFloorOrTheRatioOfActive) {
  RetryBudget budget(Config(0.2, 3));
  EXPECT_EQ(budget.Limit(0), 3);
  EXPECT_EQ(budget.Limit(10), 3);  // 0.2 x 10 = 2 < 3
  EXPECT_EQ(budget.Limit(19), 3);  // 3.8 rounds down
  EXPECT_EQ(budget.Limit(20), 4);
  EXPECT_EQ(budget.Limit(100), 20);
  RetryBudget no_floor(Config(0.5, 0));
  EXPECT_EQ(no_floor.Limit(1), 0);
  EXPECT_EQ(no_floor.Limit(7), 3);
}

TEST(RetryBudgetTest, RetriesOutstandingStayWithinTheBudget) {
  RetryBudget budget(Config(0.2, 3));
  EXPECT_TRUE(budget.TryStartRetry(10));
  EXPECT_TRUE(budget.TryStartRetry(10));
  EXPECT_TRUE(budget.TryStartRetry(10));
  EXPECT_FALSE(budget.TryStartRetry(10));
  EXPECT_EQ(budget.outstanding(), 3);
  // More active attempts widen the budget.
  EXPECT_TRUE(budget.TryStartRetry(20));
  EXPECT_FALSE(budget.TryStartRetry(20));
  // Back at 10 active, 3 outstanding still fill the budget; an ended retry
  // frees a place.
  budget.EndRetry();
  EXPECT_EQ(budget.outstanding(), 3);
  EXPECT_FALSE(budget.TryStartRetry(10));
  budget.EndRetry();
  EXPECT_TRUE(budget.TryStartRetry(10));
  EXPECT_FALSE(budget.TryStartRetry(10));
}

TEST(RetryBudgetTest, ZeroBudgetAllowsNoRetry) {
  RetryBudget budget(Config(0, 0));
  EXPECT_FALSE(budget.TryStartRetry(1000));
}

TEST(RetryBudgetTest, DenialMessageNamesTheBudget) {
  RetryBudget budget(Config(0.2, 3));
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(budget.TryStartRetry(10));
  EXPECT_EQ(budget.DenialMessage(10),
            "retry budget of the host exhausted: 3 retries outstanding, "
            "budget max(retry_budget.min_retry_concurrency 3, "
            "retry_budget.ratio 0.2 x 10 active) = 3");
  EXPECT_THAT(budget.DenialMessage(20), HasSubstr("= 4"));
}

}  // namespace
}  // namespace fetchd::core::politeness
