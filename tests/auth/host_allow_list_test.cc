#include "service/auth/host_allow_list.h"

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fetchd::auth {
namespace {

using ::testing::HasSubstr;

HostAllowList MustCreate(const std::vector<std::string>& patterns) {
  absl::StatusOr<HostAllowList> list =
      HostAllowList::Create(patterns, "allowed_hosts");
  EXPECT_TRUE(list.ok()) << list.status();
  return list.ok() ? *list : HostAllowList();
}

TEST(HostAllowListTest, EmptyListAndStarAllowEverything) {
  for (const HostAllowList& list : {MustCreate({}), MustCreate({"*"})}) {
    EXPECT_TRUE(list.allows_all());
    EXPECT_TRUE(list.Allows("example.org"));
    EXPECT_TRUE(list.Allows("127.0.0.1"));
  }
}

TEST(HostAllowListTest, ExactAndWildcardPatterns) {
  const HostAllowList list =
      MustCreate({"api.example.org", "*.cdn.example.net", "10.0.0.1"});
  EXPECT_FALSE(list.allows_all());
  EXPECT_TRUE(list.Allows("api.example.org"));
  EXPECT_TRUE(list.Allows("API.Example.ORG"));
  EXPECT_FALSE(list.Allows("example.org"));
  EXPECT_FALSE(list.Allows("evil-api.example.org"));
  EXPECT_FALSE(list.Allows("api.example.org.evil.test"));
  EXPECT_TRUE(list.Allows("a.cdn.example.net"));
  EXPECT_TRUE(list.Allows("a.b.cdn.example.net"));
  EXPECT_FALSE(list.Allows("cdn.example.net"));
  EXPECT_FALSE(list.Allows("xcdn.example.net"));
  EXPECT_TRUE(list.Allows("10.0.0.1"));
  EXPECT_FALSE(list.Allows("10.0.0.10"));
}

TEST(HostAllowListTest, BadPatternsNameTheIndexAndRule) {
  for (const char* bad :
       {"", "*.", ".example.org", "example..org", "a*.example.org",
        "example.org:443", "http://example.org", "ex ample.org", "::1"}) {
    absl::StatusOr<HostAllowList> list =
        HostAllowList::Create({"ok.example.org", bad}, "auth.callers[0].x");
    ASSERT_FALSE(list.ok()) << bad;
    EXPECT_EQ(list.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(list.status().message(), HasSubstr("auth.callers[0].x[1]: "))
        << bad;
  }
}

TEST(HostAllowListTest, HostOfKey) {
  EXPECT_EQ(HostOfKey("http://example.org:80"), "example.org");
  EXPECT_EQ(HostOfKey("https://10.1.2.3:8443"), "10.1.2.3");
  EXPECT_EQ(HostOfKey("http://[::1]:8080"), "::1");
}

}  // namespace
}  // namespace fetchd::auth
