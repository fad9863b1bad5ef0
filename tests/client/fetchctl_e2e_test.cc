// fetchctl's first-hour behaviour through the real binaries: request
// options apply the same with and without -o, --deadline bounds connecting,
// every result line carries index/status/attempts, results that arrived
// before a failed call are printed, usage errors are named by their flag,
// --version, and the hint after BODY_TOO_LARGE.
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fetch/v1/fetch.grpc.pb.h"
#include "fetch/v1/fetch.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/e2e/fetchd_e2e_fixture.h"
#include "tests/e2e/subprocess.h"
#include "tests/testing/test_http_server.h"

namespace fetchd::testing {
namespace {

using ::fetch::v1::FetchResult;
using ::testing::HasSubstr;
using ::testing::Not;

std::vector<std::string> Lines(const std::string& text) {
  return absl::StrSplit(text, '\n', absl::SkipEmpty());
}

FetchResult ParseLine(absl::string_view line) {
  FetchResult result;
  EXPECT_TRUE(
      google::protobuf::util::JsonStringToMessage(
          google::protobuf::StringPiece(line.data(), line.size()), &result)
          .ok())
      << line;
  return result;
}

std::optional<std::string> HeaderValue(const FetchResult& result,
                                       absl::string_view name) {
  for (const fetch::v1::Header& header : result.headers()) {
    if (absl::EqualsIgnoreCase(header.name(), name)) return header.value();
  }
  return std::nullopt;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in),
                     std::istreambuf_iterator<char>());
}

class FetchctlE2eTest : public FetchdE2eTest {};

// Issue 16 item 2: `-b a=1 get -o - URL` sent no cookie. Each set of
// request options goes through the JSON path (--body) and the streaming
// path (-o FILE); the server must see the same request.
TEST_F(FetchctlE2eTest, RequestOptionsApplyTheSameWithOutput) {
  ASSERT_NO_FATAL_FAILURE(StartFetchd({"--workers=1"}));
  struct Case {
    std::vector<std::string> flags;
    std::string path;
    // What the body (the server's view of the request) must contain.
    std::string expect;
  };
  const std::vector<Case> cases = {
      {{"-b", "a=1", "-b", "b=2"}, "/request-headers", "cookie: a=1; b=2"},
      {{"-H", "X-A: 1"}, "/request-headers", "x-a: 1"},
      {{"-u", "alice:pw"},
       "/request-headers",
       "authorization: Basic " + absl::Base64Escape("alice:pw")},
      {{"--oauth2-bearer", "tok"},
       "/request-headers",
       "authorization: Bearer tok"},
      {{"-X", "PUT", "-d", "x=1"}, "/echo", "x=1"},
      {{"--json", R"({"n":1})", "--url-query", "q=1"}, "/echo", R"({"n":1})"},
      {{"-F", "f=v"}, "/echo", "name=\"f\""},
      {{"--data-urlencode", "m=a b"}, "/echo", "m=a%20b"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(absl::StrJoin(c.flags, " "));
    std::vector<std::string> inline_args = c.flags;
    inline_args.insert(inline_args.end(), {"--body", "get", http_.Url(c.path)});
    const ExitInfo inline_run = RunFetchctl(inline_args);
    ASSERT_EQ(inline_run.exit_code, 0) << Describe(inline_run);
    const std::vector<std::string> inline_lines = Lines(inline_run.stdout_text);
    ASSERT_EQ(inline_lines.size(), 1u) << inline_run.stdout_text;
    const FetchResult inline_result = ParseLine(inline_lines[0]);

    const std::string file = (dir_ / "out").string();
    std::vector<std::string> streamed_args = c.flags;
    streamed_args.insert(streamed_args.end(),
                         {"get", http_.Url(c.path), "-o", file});
    const ExitInfo streamed_run = RunFetchctl(streamed_args);
    ASSERT_EQ(streamed_run.exit_code, 0) << Describe(streamed_run);
    const std::vector<std::string> streamed_lines =
        Lines(streamed_run.stdout_text);
    ASSERT_EQ(streamed_lines.size(), 1u) << streamed_run.stdout_text;
    const FetchResult streamed_result = ParseLine(streamed_lines[0]);

    EXPECT_THAT(inline_result.body(), HasSubstr(c.expect));
    EXPECT_THAT(ReadAll(file), HasSubstr(c.expect));
    EXPECT_EQ(ReadAll(file), inline_result.body());
    EXPECT_EQ(streamed_result.status(), inline_result.status());
    for (absl::string_view echoed :
         {"X-Echo-Method", "X-Echo-Target", "X-Echo-Content-Type"}) {
      // Without the multipart boundary, which differs per request.
      const auto without_parameters = [&](const FetchResult& r) {
        const std::optional<std::string> value = HeaderValue(r, echoed);
        return value.has_value() ? value->substr(0, value->find(';'))
                                 : std::string("(none)");
      };
      EXPECT_EQ(without_parameters(streamed_result),
                without_parameters(inline_result))
          << echoed;
    }
  }
}

// Issue 16 item 4: `--deadline 1` waited 5 s (the connect timeout) when
// fetchd was unreachable.
TEST_F(FetchctlE2eTest, DeadlineBoundsConnecting) {
  const std::string nobody = absl::StrCat("127.0.0.1:", UnusedLoopbackPort());
  for (const std::vector<std::string>& command :
       {std::vector<std::string>{"get", "http://127.0.0.1:1/"},
        std::vector<std::string>{"health"}}) {
    std::vector<std::string> argv = {FETCHCTL_BIN, "--server", nobody,
                                     "--deadline", "0.5"};
    argv.insert(argv.end(), command.begin(), command.end());
    const absl::Time start = absl::Now();
    absl::StatusOr<ExitInfo> info = RunSubprocess(argv, kProcessTimeout);
    const absl::Duration took = absl::Now() - start;
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->exit_code, 3) << Describe(*info);
    EXPECT_THAT(info->stderr_text, HasSubstr("DEADLINE_EXCEEDED"));
    EXPECT_THAT(info->stderr_text, HasSubstr(nobody));
    // Sanity bound, well under the 5 s connect timeout.
    EXPECT_LT(took, absl::Seconds(3));
  }
}

// Issue 16 item 5: proto3 JSON left "index" out of the first result, and
// "status" out of a result without a response.
TEST_F(FetchctlE2eTest, EveryResultLineHasIndexStatusAndAttempts) {
  ASSERT_NO_FATAL_FAILURE(StartFetchd({"--workers=1"}));
  const std::string refused =
      absl::StrCat("http://127.0.0.1:", UnusedLoopbackPort(), "/");
  const ExitInfo info =
      RunFetchctl({"--ordered", "get", http_.Url("/ok"), refused});
  EXPECT_EQ(info.exit_code, 1) << Describe(info);
  const std::vector<std::string> lines = Lines(info.stdout_text);
  ASSERT_EQ(lines.size(), 2u) << info.stdout_text;
  EXPECT_THAT(lines[0], HasSubstr("\"index\":0,"));
  EXPECT_THAT(lines[0], HasSubstr("\"status\":200,"));
  EXPECT_THAT(lines[0], HasSubstr("\"attempts\":1"));
  EXPECT_THAT(lines[1], HasSubstr("\"index\":1,"));
  EXPECT_THAT(lines[1], HasSubstr("\"status\":0,"));
  EXPECT_EQ(ParseLine(lines[1]).error(), fetch::v1::ERROR_KIND_CONNECT);
}

// A FetchService that answers the first request of a batch, then nothing
// until the call ends: what fetchctl sees when its deadline passes with
// results outstanding, whatever fetchd does about them.
class FirstResultOnlyService : public fetch::v1::FetchService::CallbackService {
 public:
  grpc::ServerWriteReactor<fetch::v1::FetchEvent>* FetchBatch(
      grpc::CallbackServerContext*, const fetch::v1::BatchRequest*) override {
    class Reactor : public grpc::ServerWriteReactor<fetch::v1::FetchEvent> {
     public:
      Reactor() {
        FetchResult& result = *event_.add_results();
        result.set_index(0);
        result.set_status(200);
        result.set_attempts(1);
        StartWrite(&event_);
      }
      void OnWriteDone(bool) override {}
      // The deadline (or the client) ended the call.
      void OnCancel() override { Finish(grpc::Status::CANCELLED); }
      void OnDone() override { delete this; }

     private:
      fetch::v1::FetchEvent event_;
    };
    return new Reactor();
  }
};

// Issue 16 item 3 (fetchctl's part): the results that arrived before the
// deadline are printed, then the status and how many arrived.
TEST_F(FetchctlE2eTest, ResultsBeforeTheDeadlineArePrintedThenTheStatus) {
  FirstResultOnlyService service;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                           &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);

  absl::StatusOr<ExitInfo> info =
      RunSubprocess({FETCHCTL_BIN, "--server", absl::StrCat("127.0.0.1:", port),
                     "--no-progress", "--deadline", "1", "get",
                     "http://a.test/fast", "http://a.test/slow"},
                    kProcessTimeout);
  server->Shutdown(absl::ToChronoTime(absl::Now()));
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->exit_code, 3) << Describe(*info);
  const std::vector<std::string> lines = Lines(info->stdout_text);
  ASSERT_EQ(lines.size(), 1u) << info->stdout_text;
  EXPECT_EQ(ParseLine(lines[0]).status(), 200u);
  EXPECT_THAT(info->stderr_text, HasSubstr("DEADLINE_EXCEEDED"));
  EXPECT_THAT(info->stderr_text, HasSubstr("1 of 2 results received"));
}

// Issue 16 item 9: user mistakes are usage errors (exit 2) named by the
// flag: checked locally where fetchctl can, else fetchd's field mapped
// back to the flag.
TEST_F(FetchctlE2eTest, RejectedValuesAreUsageErrorsNamedByTheirFlag) {
  ASSERT_NO_FATAL_FAILURE(StartFetchd({"--workers=1"}));
  ExitInfo info =
      RunFetchctl({"-H", "Content-Length: 5", "get", http_.Url("/ok")});
  EXPECT_EQ(info.exit_code, 2) << Describe(info);
  EXPECT_THAT(info.stderr_text,
              HasSubstr("-H/--header: 'Content-Length: 5': fetchd sets"));
  EXPECT_THAT(info.stderr_text, Not(HasSubstr("defaults.headers")));

  // Only fetchd knows its config forbids Host.
  info = RunFetchctl({"-H", "Host: other.test", "get", http_.Url("/ok")});
  EXPECT_EQ(info.exit_code, 2) << Describe(info);
  EXPECT_THAT(info.stderr_text,
              HasSubstr("-H/--header 'Host: other.test': header \"Host\" is "
                        "not allowed"));
  EXPECT_THAT(info.stderr_text, HasSubstr("(fetchd: defaults.headers[0])"));

  // The streaming path maps it too.
  info = RunFetchctl({"-H", "Host: other.test", "get", http_.Url("/ok"), "-o",
                      (dir_ / "out").string()});
  EXPECT_EQ(info.exit_code, 2) << Describe(info);
  EXPECT_THAT(info.stderr_text, HasSubstr("-H/--header 'Host: other.test'"));
  EXPECT_EQ(http_.TotalRequests(), 0);
}

// Issue 16 item 7 (fetchctl's part).
TEST_F(FetchctlE2eTest, VersionAndHelp) {
  absl::StatusOr<ExitInfo> info =
      RunSubprocess({FETCHCTL_BIN, "--version"}, kProcessTimeout);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->exit_code, 0) << Describe(*info);
  EXPECT_THAT(info->stdout_text,
              HasSubstr(absl::StrCat("fetchctl ", FETCHD_PROJECT_VERSION, " (",
                                     FETCHD_BUILD_TYPE, " build, ")));

  info = RunSubprocess({FETCHCTL_BIN, "--help"}, kProcessTimeout);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->exit_code, 0) << Describe(*info);
  EXPECT_THAT(info->stdout_text, HasSubstr("  -H, --header \"NAME: VALUE\""));
  EXPECT_THAT(info->stdout_text, HasSubstr("--version"));
}

// Issue 16 item 10: the message names the cap and the ways past it.
TEST_F(FetchctlE2eTest, BodyTooLargeNamesTheCapAndTheWayOut) {
  ASSERT_NO_FATAL_FAILURE(StartFetchd({"--workers=1"}));
  const std::string big = http_.Url("/bytes?n=3000000");
  ExitInfo info = RunFetchctl({"get", big});
  EXPECT_EQ(info.exit_code, 1) << Describe(info);
  ASSERT_EQ(Lines(info.stdout_text).size(), 1u) << info.stdout_text;
  EXPECT_EQ(ParseLine(Lines(info.stdout_text)[0]).error(),
            fetch::v1::ERROR_KIND_BODY_TOO_LARGE);
  EXPECT_THAT(info.stderr_text, HasSubstr("2 MiB"));
  EXPECT_THAT(info.stderr_text, HasSubstr("--max-filesize BYTES"));
  EXPECT_THAT(info.stderr_text, HasSubstr("-o FILE"));

  info = RunFetchctl({"--max-filesize", "1000", "get", big});
  EXPECT_EQ(info.exit_code, 1) << Describe(info);
  EXPECT_THAT(info.stderr_text, HasSubstr("1000 bytes"));
  EXPECT_THAT(info.stderr_text, HasSubstr("--max-filesize"));

  // The advice works: either way past the cap succeeds.
  info = RunFetchctl({"--max-filesize", "4000000", "get", big});
  EXPECT_EQ(info.exit_code, 0) << Describe(info);
  info = RunFetchctl({"get", big, "-o", (dir_ / "big").string()});
  EXPECT_EQ(info.exit_code, 0) << Describe(info);
}

}  // namespace
}  // namespace fetchd::testing
