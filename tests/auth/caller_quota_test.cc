#include "service/auth/caller_quota.h"

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fetchd::auth {
namespace {

using ::testing::HasSubstr;

CallerRules Rules(const std::string& field, uint32_t max_pending,
                  uint32_t max_active_calls) {
  CallerRules rules;
  rules.field = field;
  rules.max_pending = max_pending;
  rules.max_active_calls = max_active_calls;
  return rules;
}

Caller Named(const std::string& name, const CallerRules* rules) {
  Caller caller;
  caller.name = name;
  caller.rules = rules;
  return caller;
}

TEST(CallerQuotasTest, PendingLimitIsPerCaller) {
  const CallerRules rules = Rules("auth.default_caller", 10, 0);
  CallerQuotas quotas;
  auto alice = quotas.Admit(Named("alice", &rules), 8);
  ASSERT_TRUE(alice.ok()) << alice.status();

  auto refused = quotas.Admit(Named("alice", &rules), 3);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("caller \"alice\" has 8 requests pending; 3 more "
                        "would exceed auth.default_caller.max_pending (10)"));
  // Another identity under the same rules has its own counter.
  auto bob = quotas.Admit(Named("bob", &rules), 10);
  EXPECT_TRUE(bob.ok()) << bob.status();
  // Alice still fits 2.
  auto two = quotas.Admit(Named("alice", &rules), 2);
  EXPECT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(quotas.pending("alice"), 10);

  // Finished requests make room.
  (*alice)->RequestsDone(5);
  EXPECT_EQ(quotas.pending("alice"), 5);
  EXPECT_TRUE(quotas.Admit(Named("alice", &rules), 5).ok());
}

// A stream is admitted with no requests and adds each message's as it
// reads them, within the caller's max_pending.
TEST(CallerQuotasTest, AStreamAddsRequestsWithinThePendingLimit) {
  const CallerRules rules = Rules("auth.default_caller", 10, 0);
  CallerQuotas quotas;
  auto stream = quotas.Admit(Named("alice", &rules), 0);
  ASSERT_TRUE(stream.ok()) << stream.status();
  EXPECT_TRUE((*stream)->TryAddRequests(6).ok());
  auto batch = quotas.Admit(Named("alice", &rules), 3);
  ASSERT_TRUE(batch.ok()) << batch.status();
  const absl::Status refused = (*stream)->TryAddRequests(2);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.message(),
              HasSubstr("caller \"alice\" has 9 requests pending; 2 more "
                        "would exceed auth.default_caller.max_pending (10)"));
  EXPECT_EQ(quotas.pending("alice"), 9);
  EXPECT_TRUE((*stream)->TryAddRequests(1).ok());
  (*stream)->RequestsDone(7);
  EXPECT_EQ(quotas.pending("alice"), 3);
}

TEST(CallerQuotasTest, ActiveCallLimitCountsLeases) {
  const CallerRules rules = Rules("auth.callers[0]", 0, 2);
  CallerQuotas quotas;
  auto first = quotas.Admit(Named("", &rules), 1);
  auto second = quotas.Admit(Named("", &rules), 1);
  ASSERT_TRUE(first.ok() && second.ok());
  auto third = quotas.Admit(Named("", &rules), 1);
  ASSERT_FALSE(third.ok());
  EXPECT_THAT(third.status().message(),
              HasSubstr("caller \"anonymous\" has 2 active calls, the limit "
                        "auth.callers[0].max_active_calls"));
  (*first)->RequestsDone(1);
  first->reset();  // the call ends
  EXPECT_TRUE(quotas.Admit(Named("", &rules), 1).ok());
}

TEST(CallerQuotasTest, ZeroMeansNoPerCallerLimit) {
  const CallerRules rules = Rules("auth.default_caller", 0, 0);
  CallerQuotas quotas;
  auto big = quotas.Admit(Named("alice", &rules), 1000000);
  EXPECT_TRUE(big.ok()) << big.status();
}

TEST(CallerQuotasTest, CountersLiveOnlyWhileACallIsActive) {
  const CallerRules rules = Rules("auth.default_caller", 1, 0);
  CallerQuotas quotas;
  {
    auto lease = quotas.Admit(Named("alice", &rules), 1);
    ASSERT_TRUE(lease.ok());
    EXPECT_FALSE(quotas.Admit(Named("alice", &rules), 1).ok());
    EXPECT_EQ(quotas.tracked_callers(), 1u);
    (*lease)->RequestsDone(1);
  }
  EXPECT_EQ(quotas.tracked_callers(), 0u);
  // A refused first call leaves nothing behind either.
  EXPECT_FALSE(quotas.Admit(Named("bob", &rules), 2).ok());
  EXPECT_EQ(quotas.tracked_callers(), 0u);
}

}  // namespace
}  // namespace fetchd::auth
