#include "client/result_json.h"

#include <string>

#include "absl/status/statusor.h"
#include "fetch/v1/fetch.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"

namespace fetchd::client {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(ResultJsonTest, ZeroIndexStatusAndAttemptsArePrinted) {
  fetch::v1::FetchResult result;
  result.set_id("r0");
  result.set_final_url("http://a.test/");
  result.set_error(fetch::v1::ERROR_KIND_CONNECT);
  absl::StatusOr<std::string> json = ResultJson(result, false);
  ASSERT_TRUE(json.ok()) << json.status();
  // In field order, camelCase, as the protobuf JSON mapping prints them.
  EXPECT_THAT(*json, HasSubstr(R"({"id":"r0","index":0,)"));
  EXPECT_THAT(*json, HasSubstr(R"("finalUrl":"http://a.test/","status":0,)"));
  EXPECT_THAT(*json, HasSubstr(R"("attempts":0)"));
  EXPECT_THAT(*json, Not(HasSubstr("4294967295")));
  fetch::v1::FetchResult parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(*json, &parsed).ok());
  EXPECT_EQ(parsed.SerializeAsString(), result.SerializeAsString());
}

TEST(ResultJsonTest, NonZeroValuesAndNestedStatusesAreLeftAlone) {
  fetch::v1::FetchResult result;
  result.set_index(3);
  result.set_status(200);
  result.set_attempts(2);
  result.add_redirect_history()->set_status(0);
  result.add_redirect_history()->set_status(301);
  absl::StatusOr<std::string> json = ResultJson(result, false);
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_THAT(*json, HasSubstr(R"("index":3,"status":200,)"));
  EXPECT_THAT(*json, HasSubstr(R"("attempts":2)"));
  fetch::v1::FetchResult parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(*json, &parsed).ok());
  EXPECT_EQ(parsed.SerializeAsString(), result.SerializeAsString());
}

TEST(ResultJsonTest, BodyOnlyWhenAsked) {
  fetch::v1::FetchResult result;
  result.set_body("hello");
  absl::StatusOr<std::string> without = ResultJson(result, false);
  ASSERT_TRUE(without.ok());
  EXPECT_THAT(*without, Not(HasSubstr("body")));
  absl::StatusOr<std::string> with = ResultJson(result, true);
  ASSERT_TRUE(with.ok());
  EXPECT_THAT(*with, HasSubstr(R"("body":"aGVsbG8=")"));
}

}  // namespace
}  // namespace fetchd::client
