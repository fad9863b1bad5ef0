// The access log line: what it says, and what it never says.
#include "service/metrics/access_log.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fetchd::metrics {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(LoggableUrlTest, DropsUserinfoQueryAndFragment) {
  struct Case {
    std::string url;
    std::string host_key;
    std::string want;
  };
  const Case cases[] = {
      {"https://example.org/a/b?sig=secret#frag", "https://example.org:443",
       "https://example.org:443/a/b"},
      {"http://user:pw@example.org:8080/x?token=t", "http://example.org:8080",
       "http://example.org:8080/x"},
      {"http://example.org", "http://example.org:80", "http://example.org:80"},
      // Invalid URLs (no host key): same rules, best effort.
      {"http://user:pw@exa mple.org/p?sig=secret", "",
       "http://exa%20mple.org/p"},
      {"ftp://u@h/x#f", "", "ftp://h/x"},
      {"user:pw@host/path?q=1", "", "host/path"},
      {"/relative?x=1", "", "/relative"},
      {"no scheme?a=http://x", "", "no%20scheme"},
      {"http://h/a\"b\\c\nd\x7f", "", "http://h/a%22b%5Cc%0Ad%7F"},
      {"", "", ""},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(LoggableUrl(c.url, c.host_key), c.want) << c.url;
  }
}

TEST(LoggableUrlTest, CutsVeryLongUrls) {
  const std::string url = "http://h/" + std::string(5000, 'a');
  const std::string logged = LoggableUrl(url, "");
  EXPECT_EQ(logged.size(), kMaxLoggedUrlBytes);
  EXPECT_TRUE(logged.ends_with("..."));
}

TEST(AccessLogLineTest, OneLogfmtLineWithTheRequestFacts) {
  fetch::v1::FetchResult result;
  result.set_status(503);
  result.set_error(fetch::v1::ERROR_KIND_HTTP_STATUS);
  result.set_attempts(3);
  result.set_bytes_received(10);
  result.set_bytes_sent(5);
  auto* header = result.add_headers();
  header->set_name("Set-Cookie");
  header->set_value("session=abc");
  const std::string line = AccessLogLine(
      core::FinishedRequest{
          "POST", "https://u:p@api.example.com/v1/x?sig=secret",
          "https://api.example.com:443", absl::Microseconds(12345)},
      result);
  EXPECT_EQ(line,
            "access method=POST url=https://api.example.com:443/v1/x "
            "status=503 outcome=http_status attempts=3 duration_ms=12.345 "
            "bytes_received=10 bytes_sent=5");
}

TEST(AccessLogLineTest, UnknownMethodIsLoggedAsOther) {
  const std::string line = AccessLogLine(
      core::FinishedRequest{"GET\nfake=line", "not a url?sig=secret", "",
                            absl::ZeroDuration()},
      fetch::v1::FetchResult());
  EXPECT_THAT(line, HasSubstr("method=other url=not%20a%20url status=0"));
  EXPECT_THAT(line, Not(HasSubstr("secret")));
  EXPECT_THAT(line, Not(HasSubstr("\n")));
}

}  // namespace
}  // namespace fetchd::metrics
