#include "service/auth/token_table.h"

#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fetchd::auth {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kAliceToken[] = "alice-0123456789abcdef";
constexpr char kBobToken[] = "bob-0123456789abcdef";

TEST(TokenTableTest, LooksUpEveryTokenByItsName) {
  absl::StatusOr<TokenTable> table = TokenTable::Parse(
      "# callers\n"
      "\n"
      "alice alice-0123456789abcdef\n"
      "  bob\tbob-0123456789abcdef  \r\n");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_THAT(table->names(), ElementsAre("alice", "bob"));
  EXPECT_EQ(table->Lookup(kAliceToken), "alice");
  EXPECT_EQ(table->Lookup(kBobToken), "bob");
}

TEST(TokenTableTest, UnknownOrAlmostRightTokensAreNotFound) {
  absl::StatusOr<TokenTable> table =
      TokenTable::Parse(std::string("alice ") + kAliceToken + "\n");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_EQ(table->Lookup(""), std::nullopt);
  EXPECT_EQ(table->Lookup("alice-0123456789abcde"), std::nullopt);
  EXPECT_EQ(table->Lookup("alice-0123456789abcdeF"), std::nullopt);
  EXPECT_EQ(table->Lookup(std::string(kAliceToken) + "x"), std::nullopt);
  EXPECT_EQ(table->Lookup("alice"), std::nullopt);
}

TEST(TokenTableTest, EmptyFileIsAnEmptyTable) {
  absl::StatusOr<TokenTable> table = TokenTable::Parse("# nobody yet\n\n");
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_TRUE(table->empty());
  EXPECT_EQ(table->Lookup(kAliceToken), std::nullopt);
}

struct BadFile {
  const char* text;
  const char* error;
};

TEST(TokenTableTest, BadLinesNameTheLineAndRuleButNeverTheToken) {
  const BadFile cases[] = {
      {"alice\n", "line 1: expected \"NAME TOKEN\", got 1 fields"},
      {"\nalice a b\n", "line 2: expected \"NAME TOKEN\", got 3 fields"},
      {"al!ce alice-0123456789abcdef\n", "line 1: name must be"},
      {"alice short-token\n", "token of \"alice\" must be 16 to 4096"},
      {"alice alice-0123456789abcdef\nalice other-0123456789abcdef\n",
       "line 2: name \"alice\" appears twice"},
      {"alice alice-0123456789abcdef\nbob alice-0123456789abcdef\n",
       "line 2: token of \"bob\" is also an earlier caller's token"},
      {"alice alice-0123456789abcd\x7f\n", "must be printable ASCII"},
  };
  for (const BadFile& c : cases) {
    absl::StatusOr<TokenTable> table = TokenTable::Parse(c.text);
    ASSERT_FALSE(table.ok()) << c.text;
    EXPECT_EQ(table.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(table.status().message(), HasSubstr(c.error)) << c.text;
    EXPECT_THAT(table.status().message(), Not(HasSubstr("0123456789")));
  }
}

TEST(TokenTableTest, CallerNames) {
  EXPECT_TRUE(IsValidCallerName("svc-a.prod@example.org"));
  EXPECT_TRUE(IsValidCallerName("spiffe://cluster/ns/a"));
  EXPECT_FALSE(IsValidCallerName(""));
  EXPECT_FALSE(IsValidCallerName("two words"));
  EXPECT_FALSE(IsValidCallerName(std::string(129, 'a')));
}

}  // namespace
}  // namespace fetchd::auth
