// Request features end to end through the real binaries: fetchctl's body,
// query and credential flags, --fail, the -v summary on stderr, and that
// fetchd's logs (access log on, debug level) never show credentials or
// query values.
#include <signal.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "fetch/v1/fetch.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/e2e/fetchd_e2e_fixture.h"
#include "tests/e2e/subprocess.h"

namespace fetchd::testing {
namespace {

using ::fetch::v1::FetchResult;
using ::testing::HasSubstr;
using ::testing::Not;

// fetchctl's stdout: one JSON FetchResult per line, in order.
std::vector<FetchResult> Results(const ExitInfo& info) {
  std::vector<FetchResult> results;
  for (absl::string_view line :
       absl::StrSplit(info.stdout_text, '\n', absl::SkipEmpty())) {
    FetchResult& result = results.emplace_back();
    const auto status = google::protobuf::util::JsonStringToMessage(
        google::protobuf::StringPiece(line.data(), line.size()), &result);
    EXPECT_TRUE(status.ok()) << "not a JSON FetchResult: " << line;
  }
  return results;
}

std::optional<std::string> HeaderValue(const FetchResult& result,
                                       absl::string_view name) {
  for (const fetch::v1::Header& header : result.headers()) {
    if (absl::EqualsIgnoreCase(header.name(), name)) return header.value();
  }
  return std::nullopt;
}

class RequestE2eTest : public FetchdE2eTest {
 protected:
  // The only result of a fetchctl run that must exit with `exit_code`.
  FetchResult RunOne(std::vector<std::string> args, int exit_code = 0) {
    const ExitInfo info = RunFetchctl(std::move(args));
    EXPECT_EQ(info.exit_code, exit_code) << Describe(info);
    std::vector<FetchResult> results = Results(info);
    EXPECT_EQ(results.size(), 1u) << info.stdout_text;
    return results.empty() ? FetchResult() : results[0];
  }
};

TEST_F(RequestE2eTest, BodyAndQueryFlagsReachTheServer) {
  ASSERT_NO_FATAL_FAILURE(StartFetchd({"--workers=1"}));
  const std::string echo = http_.Url("/echo");
  const std::string file = WriteFile("photo.png", std::string("\x89PNG", 4));

  FetchResult r = RunOne({"--body", "-F", "title=holiday", "-F",
                          "photo=@" + file + ";type=image/png", "get", echo});
  EXPECT_EQ(r.status(), 200u) << r.error_message();
  EXPECT_EQ(HeaderValue(r, "X-Echo-Method"), "POST");
  EXPECT_EQ(r.body(),
            "name=\"title\" filename=\"\" type=\"\" data=\"holiday\"\n"
            "name=\"photo\" filename=\"photo.png\" type=\"image/png\" "
            "data=\"\\x89PNG\"\n");

  r = RunOne({"--body", "--json", R"({"n": 1})", "get", echo});
  EXPECT_EQ(r.body(), R"({"n": 1})");
  EXPECT_EQ(HeaderValue(r, "X-Echo-Content-Type"), "application/json");

  r = RunOne(
      {"--body", "-X", "PUT", "--data-urlencode", "msg=a b&c", "get", echo});
  EXPECT_EQ(HeaderValue(r, "X-Echo-Method"), "PUT");
  EXPECT_EQ(r.body(), "msg=a%20b%26c");
  EXPECT_EQ(HeaderValue(r, "X-Echo-Content-Type"),
            "application/x-www-form-urlencoded");

  r = RunOne({"--url-query", "q=fetch d", "-H", "X-A: 1", "get",
              http_.Url("/echo?page=2")});
  EXPECT_EQ(HeaderValue(r, "X-Echo-Target"), "/echo?page=2&q=fetch%20d");

  // A bad body is a usage error named by its flag (fetchctl checks the
  // JSON itself, as fetchd would), and nothing is sent.
  const int before = http_.TotalRequests();
  const ExitInfo bad = RunFetchctl({"--json", "{nope", "get", echo});
  EXPECT_EQ(bad.exit_code, 2) << Describe(bad);
  EXPECT_THAT(bad.stderr_text, HasSubstr("--json: not valid JSON"));
  EXPECT_EQ(http_.TotalRequests(), before);
}

TEST_F(RequestE2eTest, FailKeepsStatusHeadersAndBody) {
  ASSERT_NO_FATAL_FAILURE(StartFetchd({"--workers=1"}));
  const FetchResult r =
      RunOne({"--fail", "--body", "get", http_.Url("/status?code=418")}, 1);
  EXPECT_EQ(r.error(), fetch::v1::ERROR_KIND_HTTP_STATUS);
  EXPECT_EQ(r.status(), 418u);
  EXPECT_EQ(r.body(), "status 418");
  EXPECT_TRUE(HeaderValue(r, "Content-Length").has_value());
  // Without --fail the same response is a success.
  EXPECT_EQ(RunOne({"get", http_.Url("/status?code=418")}).error(),
            fetch::v1::ERROR_KIND_NONE);
}

TEST_F(RequestE2eTest, VerbosePrintsTimingsAndConnectionFactsOnStderr) {
  ASSERT_NO_FATAL_FAILURE(StartFetchd({"--workers=1"}));
  const ExitInfo info =
      RunFetchctl({"-v", "--max-concurrency", "1", "--ordered", "get",
                   http_.Url("/ok"), http_.Url("/ok")});
  ASSERT_EQ(info.exit_code, 0) << Describe(info);
  EXPECT_EQ(Results(info).size(), 2u);  // stdout keeps its JSON lines
  const std::string& err = info.stderr_text;
  const std::string remote = absl::StrCat("* remote 127.0.0.1:", http_.port());
  EXPECT_THAT(err, HasSubstr(absl::StrCat("* [0] ", http_.Url("/ok"), "\n")))
      << err;
  EXPECT_THAT(err, HasSubstr("* HTTP/1.1 200, 2 bytes received"));
  EXPECT_THAT(err, HasSubstr(remote + ", new connection\n"));
  EXPECT_THAT(err, HasSubstr(remote + ", connection reused\n"));
  EXPECT_THAT(err, HasSubstr("* queue wait "));
  EXPECT_THAT(err, HasSubstr("first byte "));
  EXPECT_THAT(err, HasSubstr("< Content-Length: 2\n"));
  // The second result comes after the first (--ordered), on the kept-alive
  // connection.
  EXPECT_LT(err.find("new connection"), err.find("connection reused"));
}

TEST_F(RequestE2eTest, CredentialsAndQueryValuesAreNeverLogged) {
  const std::string config =
      WriteFile("config.json", R"({"metrics": {"accessLogSampleRate": 1}})");
  ASSERT_NO_FATAL_FAILURE(
      StartFetchd({"--workers=1", "--config", config, "--log_level=trace"}));
  const std::string password = "Pw-hunter2-secret";
  const std::string token = "Tk-bearer-secret";
  const std::string query_value = "Qv-signature-secret";

  FetchResult basic = RunOne({"--body", "-u", "alice:" + password, "get",
                              http_.Url("/request-headers")});
  EXPECT_THAT(basic.body(), HasSubstr("authorization: Basic " +
                                      absl::Base64Escape("alice:" + password)));
  FetchResult bearer =
      RunOne({"--body", "--oauth2-bearer", token, "--url-query",
              "sig=" + query_value, "get", http_.Url("/request-headers")});
  EXPECT_THAT(bearer.body(), HasSubstr("authorization: Bearer " + token));
  EXPECT_THAT(bearer.final_url(), HasSubstr(query_value));

  // A graceful stop flushes the logs.
  ASSERT_TRUE(fetchd_->Signal(SIGTERM));
  const ExitInfo info = fetchd_->Wait(kProcessTimeout);
  fetchd_.reset();
  ASSERT_EQ(info.exit_code, 0) << Describe(info);
  const std::string& logs = info.stdout_text;
  // Both requests are in the access log, without their query.
  std::vector<std::string> access_lines;
  for (absl::string_view line : absl::StrSplit(logs, '\n')) {
    if (absl::StrContains(line, "access method=GET")) {
      access_lines.emplace_back(line);
    }
  }
  ASSERT_EQ(access_lines.size(), 2u) << logs;
  EXPECT_THAT(access_lines[1], HasSubstr("/request-headers status=200"));
  for (const std::string& secret :
       {password, absl::Base64Escape("alice:" + password), token,
        query_value}) {
    EXPECT_THAT(logs, Not(HasSubstr(secret)));
    EXPECT_THAT(info.stderr_text, Not(HasSubstr(secret)));
  }
}

}  // namespace
}  // namespace fetchd::testing
