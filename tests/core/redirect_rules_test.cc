// The redirect rules as tables: which statuses redirect, what the method
// and body become, and which headers a hop to the same or another origin
// keeps.
#include "service/core/redirect_rules.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fetchd::core {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;

TEST(RedirectRulesTest, OnlyTheFiveRedirectStatusesRedirect) {
  for (uint32_t status = 100; status < 600; ++status) {
    const bool redirect = status == 301 || status == 302 || status == 303 ||
                          status == 307 || status == 308;
    EXPECT_EQ(IsRedirectStatus(status), redirect) << status;
  }
}

TEST(RedirectRulesTest, MethodRewriteFollowsTheStatus) {
  const struct {
    uint32_t status;
    std::string method;
    bool to_get;
  } kCases[] = {
      {301, "POST", true},   {302, "POST", true},    {303, "POST", true},
      {307, "POST", false},  {308, "POST", false},   {301, "GET", false},
      {302, "PUT", false},   {301, "PATCH", false},  {303, "PUT", true},
      {303, "DELETE", true}, {303, "GET", true},     {303, "HEAD", false},
      {307, "PATCH", false}, {308, "DELETE", false}, {302, "HEAD", false},
  };
  for (const auto& c : kCases) {
    EXPECT_EQ(RedirectTurnsIntoGet(c.status, c.method), c.to_get)
        << c.method << " " << c.status;
  }
}

TEST(RedirectRulesTest, CredentialHeadersInAnyCase) {
  for (const char* name : {"Authorization", "authorization", "COOKIE", "Cookie",
                           "Proxy-Authorization"}) {
    EXPECT_TRUE(IsCredentialHeader(name)) << name;
  }
  for (const char* name : {"X-Authorization", "Cookie2", "Set-Cookie",
                           "Proxy-Authenticate", "", "Content-Type"}) {
    EXPECT_FALSE(IsCredentialHeader(name)) << name;
  }
}

FetchJob PostJob() {
  FetchJob job;
  job.url = "http://a.test/start";
  job.host_key = "http://a.test:80";
  job.method = "POST";
  job.body = "payload";
  job.multipart.push_back(MultipartPart{"f", "v", "", ""});
  job.header_lines = {"Authorization: Bearer t", "Content-Type: text/plain",
                      "cookie: s=1", "Proxy-Authorization: Basic x",
                      "X-Trace: kept"};
  return job;
}

TEST(RedirectRulesTest, AHopAcrossOriginsDropsCredentials) {
  const struct {
    std::string name;
    uint32_t status;
    std::string host_key;
    std::string want_method;
    bool keeps_body;
    std::vector<std::string> want_headers;
  } kCases[] = {
      {"same origin, 307",
       307,
       "http://a.test:80",
       "POST",
       true,
       {"Authorization: Bearer t", "Content-Type: text/plain", "cookie: s=1",
        "Proxy-Authorization: Basic x", "X-Trace: kept"}},
      {"same origin, 302 to GET",
       302,
       "http://a.test:80",
       "GET",
       false,
       {"Authorization: Bearer t", "cookie: s=1",
        "Proxy-Authorization: Basic x", "X-Trace: kept"}},
      {"other port, 308",
       308,
       "http://a.test:8080",
       "POST",
       true,
       {"Content-Type: text/plain", "X-Trace: kept"}},
      {"other scheme, 303",
       303,
       "https://a.test:443",
       "GET",
       false,
       {"X-Trace: kept"}},
      {"other host, 301 to GET",
       301,
       "http://b.test:80",
       "GET",
       false,
       {"X-Trace: kept"}},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.name);
    FetchJob job = PostJob();
    RedirectJob(job, c.status, "http://next.test/x", c.host_key);
    EXPECT_EQ(job.method, c.want_method);
    EXPECT_EQ(job.body, c.keeps_body ? "payload" : "");
    EXPECT_EQ(job.multipart.size(), c.keeps_body ? 1u : 0u);
    EXPECT_THAT(job.header_lines, ElementsAreArray(c.want_headers));
    EXPECT_EQ(job.url, "http://next.test/x");
    EXPECT_EQ(job.host_key, c.host_key);
    EXPECT_TRUE(job.redirect_pending);
    ASSERT_EQ(job.redirect_history.size(), 1u);
    EXPECT_EQ(job.redirect_history[0].url, "http://a.test/start");
    EXPECT_EQ(job.redirect_history[0].status, c.status);
  }
}

TEST(RedirectRulesTest, HopsAccumulateInTheHistory) {
  FetchJob job = PostJob();
  RedirectJob(job, 302, "http://a.test/second", "http://a.test:80");
  RedirectJob(job, 307, "http://b.test/third", "http://b.test:80");
  ASSERT_EQ(job.redirect_history.size(), 2u);
  EXPECT_EQ(job.redirect_history[1].url, "http://a.test/second");
  EXPECT_EQ(job.redirect_history[1].status, 307u);
  EXPECT_THAT(job.header_lines, ElementsAre("X-Trace: kept"));
}

}  // namespace
}  // namespace fetchd::core
