#include "client/fetchctl_options.h"

#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fetchd::client {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

absl::StatusOr<FetchctlOptions> Parse(std::vector<std::string> args,
                                      absl::string_view env_server = "") {
  args.insert(args.begin(), "fetchctl");
  return ParseFetchctlArgs(args, env_server);
}

// The error message of a parse that must fail.
std::string ParseError(std::vector<std::string> args) {
  absl::StatusOr<FetchctlOptions> options = Parse(std::move(args));
  EXPECT_FALSE(options.ok());
  if (options.ok()) {
    return "";
  }
  EXPECT_EQ(options.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(options.status().message());
}

absl::Duration FromProto(const google::protobuf::Duration& proto) {
  return absl::Seconds(proto.seconds()) + absl::Nanoseconds(proto.nanos());
}

std::vector<std::string> HeaderLines(const fetch::v1::FetchRequest& request) {
  std::vector<std::string> lines;
  for (const fetch::v1::Header& header : request.headers()) {
    lines.push_back(header.name() + "=" + header.value());
  }
  return lines;
}

std::string WriteTempFile(absl::string_view name, absl::string_view contents) {
  std::string path = ::testing::TempDir() + std::string(name);
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  file << contents;
  return path;
}

TEST(ParseFetchctlArgsTest, GetWithSeveralUrlsAndDefaults) {
  absl::StatusOr<FetchctlOptions> options =
      Parse({"get", "http://a.test/", "https://b.test/x?y=1"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->command, Command::kGet);
  EXPECT_THAT(options->urls,
              ElementsAre("http://a.test/", "https://b.test/x?y=1"));
  EXPECT_EQ(options->server, "127.0.0.1:50051");
  EXPECT_EQ(options->rpc_deadline, absl::InfiniteDuration());
  EXPECT_FALSE(options->quiet);
  EXPECT_FALSE(options->include_body);
  EXPECT_EQ(options->progress, ProgressMode::kAuto);

  const fetch::v1::FetchRequest& defaults = options->batch_template.defaults();
  EXPECT_EQ(defaults.method(), "");
  EXPECT_EQ(defaults.headers_size(), 0);
  EXPECT_FALSE(defaults.has_timeouts());
  EXPECT_FALSE(defaults.has_retry());
  EXPECT_FALSE(defaults.has_follow_redirects());
  EXPECT_FALSE(defaults.has_max_redirects());
  EXPECT_FALSE(defaults.has_max_body_bytes());
  EXPECT_FALSE(defaults.has_fail_on_http_error());
  EXPECT_EQ(options->batch_template.requests_size(), 0);
}

TEST(ParseFetchctlArgsTest, ServerFromFlagThenEnvironmentThenDefault) {
  absl::StatusOr<FetchctlOptions> from_env =
      Parse({"get", "http://a.test/"}, "fetchd.test:7000");
  ASSERT_TRUE(from_env.ok()) << from_env.status();
  EXPECT_EQ(from_env->server, "fetchd.test:7000");

  absl::StatusOr<FetchctlOptions> from_flag = Parse(
      {"--server", "127.0.0.1:9", "get", "http://a.test/"}, "fetchd.test:7000");
  ASSERT_TRUE(from_flag.ok()) << from_flag.status();
  EXPECT_EQ(from_flag->server, "127.0.0.1:9");

  absl::StatusOr<FetchctlOptions> equals_form =
      Parse({"--server=[::1]:9", "get", "http://a.test/"});
  ASSERT_TRUE(equals_form.ok()) << equals_form.status();
  EXPECT_EQ(equals_form->server, "[::1]:9");
}

TEST(ParseFetchctlArgsTest, HeadersKeepTheirOrder) {
  absl::StatusOr<FetchctlOptions> options =
      Parse({"-H", "X-B: 2", "--header", "Accept:  text/html ", "get",
             "http://a.test/", "-H", "X-A:1", "--header=X-Empty:"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_THAT(HeaderLines(options->batch_template.defaults()),
              ElementsAre("X-B=2", "Accept=text/html", "X-A=1", "X-Empty="));
}

TEST(ParseFetchctlArgsTest, ConnectionFlags) {
  const std::string ca =
      WriteTempFile("conn_ca.pem", "-----BEGIN CERTIFICATE-----\nx\n");
  absl::StatusOr<FetchctlOptions> options =
      Parse({"--cacert", ca, "-k", "-x", "socks5h://127.0.0.1:1080",
             "--proxy-user", "u:p:w", "--http2", "--resolve",
             "a.test:443:[::1]", "-b", "k=v=1", "get", "https://a.test/"});
  ASSERT_TRUE(options.ok()) << options.status();
  const fetch::v1::FetchRequest& d = options->batch_template.defaults();
  EXPECT_THAT(d.tls().ca_pem(), HasSubstr("BEGIN CERTIFICATE"));
  EXPECT_FALSE(d.tls().verify());
  EXPECT_EQ(d.proxy().url(), "socks5h://127.0.0.1:1080");
  EXPECT_EQ(d.proxy().username(), "u");
  EXPECT_EQ(d.proxy().password(), "p:w");
  EXPECT_EQ(d.http_version(), fetch::v1::HTTP_VERSION_2);
  ASSERT_EQ(d.resolve_size(), 1);
  EXPECT_EQ(d.resolve(0).host(), "a.test");
  EXPECT_EQ(d.resolve(0).port(), 443u);
  EXPECT_EQ(d.resolve(0).address(), "[::1]");
  ASSERT_EQ(options->batch_template.cookies_size(), 1);
  EXPECT_EQ(options->batch_template.cookies(0).name(), "k");
  EXPECT_EQ(options->batch_template.cookies(0).value(), "v=1");

  EXPECT_THAT(ParseError({"--resolve", "a.test:x:1.2.3.4", "get", "http://a/"}),
              HasSubstr("HOST:PORT:ADDRESS"));
  EXPECT_THAT(ParseError({"-b", "=v", "get", "http://a/"}),
              HasSubstr("NAME=VALUE"));
  EXPECT_THAT(ParseError({"--proxy-user", "nopass", "get", "http://a/"}),
              HasSubstr("USER:PASSWORD"));
  absl::StatusOr<FetchctlOptions> no_jar =
      Parse({"--no-cookies", "--http1.1", "get", "http://a/"});
  ASSERT_TRUE(no_jar.ok()) << no_jar.status();
  EXPECT_FALSE(no_jar->batch_template.cookie_jar());
  EXPECT_EQ(no_jar->batch_template.defaults().http_version(),
            fetch::v1::HTTP_VERSION_1_1);
}

TEST(ParseFetchctlArgsTest, HeaderWithoutColonIsAUsageError) {
  const std::string error = ParseError({"-H", "NoColon", "get", "http://a/"});
  EXPECT_THAT(error, HasSubstr("-H/--header"));
  EXPECT_THAT(error, HasSubstr("NoColon"));
  EXPECT_THAT(ParseError({"-H", ": value", "get", "http://a/"}),
              HasSubstr("-H/--header"));
}

TEST(ParseFetchctlArgsTest, DataImpliesPost) {
  absl::StatusOr<FetchctlOptions> options =
      Parse({"-d", "a=1&b=2", "get", "http://a.test/"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->batch_template.defaults().method(), "POST");
  EXPECT_EQ(options->batch_template.defaults().body(), "a=1&b=2");
}

TEST(ParseFetchctlArgsTest, ExplicitMethodWinsOverData) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"-X", "PUT", "-d", "x", "get", "http://a/"},
        std::vector<std::string>{"--data", "x", "--request", "PUT", "get",
                                 "http://a/"}}) {
    absl::StatusOr<FetchctlOptions> options = Parse(args);
    ASSERT_TRUE(options.ok()) << options.status();
    EXPECT_EQ(options->batch_template.defaults().method(), "PUT");
    EXPECT_EQ(options->batch_template.defaults().body(), "x");
  }
}

TEST(ParseFetchctlArgsTest, DataFromFileIsReadVerbatim) {
  const std::string body("line 1\nline 2\n\0binary", 21);
  const std::string path = WriteTempFile("fetchctl_body.bin", body);
  absl::StatusOr<FetchctlOptions> options =
      Parse({"-d", "@" + path, "get", "http://a.test/"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->batch_template.defaults().body(), body);
  EXPECT_EQ(options->batch_template.defaults().method(), "POST");
}

TEST(ParseFetchctlArgsTest, UnreadableDataFileIsAUsageError) {
  const std::string error =
      ParseError({"-d", "@/nonexistent/fetchctl/body", "get", "http://a/"});
  EXPECT_THAT(error, HasSubstr("-d/--data"));
  EXPECT_THAT(error, HasSubstr("/nonexistent/fetchctl/body"));
  EXPECT_THAT(ParseError({"-d", "x", "-d", "y", "get", "http://a/"}),
              HasSubstr("-d/--data"));
}

TEST(ParseFetchctlArgsTest, RetriesCountTheFirstAttempt) {
  absl::StatusOr<FetchctlOptions> options =
      Parse({"--retries", "2", "get", "http://a/"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->batch_template.defaults().retry().max_attempts(), 3u);

  absl::StatusOr<FetchctlOptions> no_retries =
      Parse({"--retries=0", "get", "http://a/"});
  ASSERT_TRUE(no_retries.ok()) << no_retries.status();
  EXPECT_EQ(no_retries->batch_template.defaults().retry().max_attempts(), 1u);

  EXPECT_THAT(ParseError({"--retries", "-1", "get", "http://a/"}),
              HasSubstr("--retries"));
  EXPECT_THAT(ParseError({"--retries", "two", "get", "http://a/"}),
              HasSubstr("--retries"));
}

TEST(ParseFetchctlArgsTest, TimeoutsAreDurations) {
  absl::StatusOr<FetchctlOptions> options =
      Parse({"--timeout", "1.5", "--connect-timeout", "2", "--read-timeout",
             "0.25", "--deadline", "30", "get", "http://a/"});
  ASSERT_TRUE(options.ok()) << options.status();
  const fetch::v1::Timeouts& timeouts =
      options->batch_template.defaults().timeouts();
  EXPECT_EQ(timeouts.total().seconds(), 1);
  EXPECT_EQ(timeouts.total().nanos(), 500000000);
  EXPECT_EQ(FromProto(timeouts.connect()), absl::Seconds(2));
  EXPECT_EQ(FromProto(timeouts.read_idle()), absl::Milliseconds(250));
  EXPECT_FALSE(timeouts.has_queue());
  EXPECT_EQ(options->rpc_deadline, absl::Seconds(30));
}

TEST(ParseFetchctlArgsTest, BadTimeoutsNameTheFlag) {
  EXPECT_THAT(ParseError({"--timeout", "soon", "get", "http://a/"}),
              HasSubstr("--timeout"));
  EXPECT_THAT(ParseError({"--timeout", "0", "get", "http://a/"}),
              HasSubstr("--timeout"));
  EXPECT_THAT(ParseError({"--connect-timeout", "-1", "get", "http://a/"}),
              HasSubstr("--connect-timeout"));
  EXPECT_THAT(ParseError({"--read-timeout", "inf", "get", "http://a/"}),
              HasSubstr("--read-timeout"));
  EXPECT_THAT(ParseError({"--deadline", "nan", "get", "http://a/"}),
              HasSubstr("--deadline"));
}

TEST(ParseFetchctlArgsTest, RedirectAndLimitFlags) {
  absl::StatusOr<FetchctlOptions> options =
      Parse({"-L", "--max-redirs", "3", "--max-filesize", "1048576", "--fail",
             "get", "http://a/"});
  ASSERT_TRUE(options.ok()) << options.status();
  const fetch::v1::FetchRequest& defaults = options->batch_template.defaults();
  EXPECT_TRUE(defaults.has_follow_redirects());
  EXPECT_TRUE(defaults.follow_redirects());
  EXPECT_EQ(defaults.max_redirects(), 3u);
  EXPECT_EQ(defaults.max_body_bytes(), 1048576u);
  EXPECT_TRUE(defaults.fail_on_http_error());

  absl::StatusOr<FetchctlOptions> no_location =
      Parse({"--location", "--no-location", "get", "http://a/"});
  ASSERT_TRUE(no_location.ok()) << no_location.status();
  EXPECT_TRUE(no_location->batch_template.defaults().has_follow_redirects());
  EXPECT_FALSE(no_location->batch_template.defaults().follow_redirects());

  EXPECT_THAT(ParseError({"--max-filesize", "1k", "get", "http://a/"}),
              HasSubstr("--max-filesize"));
}

TEST(ParseFetchctlArgsTest, BatchAndOutputFlags) {
  absl::StatusOr<FetchctlOptions> options =
      Parse({"batch", "-f", "urls.txt", "--max-concurrency", "8", "--ordered",
             "--fail-fast", "-q", "--body", "--no-progress"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->command, Command::kBatch);
  EXPECT_EQ(options->input_path, "urls.txt");
  EXPECT_EQ(options->batch_template.max_concurrency(), 8u);
  EXPECT_TRUE(options->batch_template.ordered());
  EXPECT_TRUE(options->batch_template.fail_fast());
  EXPECT_TRUE(options->quiet);
  EXPECT_TRUE(options->include_body);
  EXPECT_EQ(options->progress, ProgressMode::kOff);

  absl::StatusOr<FetchctlOptions> stdin_batch = Parse({"--progress", "batch"});
  ASSERT_TRUE(stdin_batch.ok()) << stdin_batch.status();
  EXPECT_EQ(stdin_batch->input_path, "-");
  EXPECT_EQ(stdin_batch->progress, ProgressMode::kOn);
}

TEST(ParseFetchctlArgsTest, ShortFlagsCombine) {
  absl::StatusOr<FetchctlOptions> options =
      Parse({"-qLXHEAD", "get", "http://a/"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_TRUE(options->quiet);
  EXPECT_TRUE(options->batch_template.defaults().follow_redirects());
  EXPECT_EQ(options->batch_template.defaults().method(), "HEAD");
}

TEST(ParseFetchctlArgsTest, DoubleDashEndsTheFlags) {
  absl::StatusOr<FetchctlOptions> options =
      Parse({"-q", "get", "--", "-not-a-flag", "http://a/"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_THAT(options->urls, ElementsAre("-not-a-flag", "http://a/"));
}

TEST(ParseFetchctlArgsTest, HelpWins) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"-h"}, std::vector<std::string>{"--help"},
        std::vector<std::string>{"get", "http://a/", "--help"}}) {
    absl::StatusOr<FetchctlOptions> options = Parse(args);
    ASSERT_TRUE(options.ok()) << options.status();
    EXPECT_EQ(options->command, Command::kHelp);
  }
}

TEST(ParseFetchctlArgsTest, FlagErrorsNameTheFlag) {
  EXPECT_THAT(ParseError({"--bogus", "get", "http://a/"}),
              HasSubstr("'--bogus'"));
  EXPECT_THAT(ParseError({"-Z", "get", "http://a/"}), HasSubstr("'-Z'"));
  EXPECT_THAT(ParseError({"get", "http://a/", "--timeout"}),
              HasSubstr("--timeout: missing value"));
  EXPECT_THAT(ParseError({"get", "http://a/", "-H"}),
              HasSubstr("-H/--header: missing value"));
  EXPECT_THAT(ParseError({"--ordered=yes", "get", "http://a/"}),
              HasSubstr("--ordered: takes no value"));
  EXPECT_THAT(ParseError({"--server", "", "get", "http://a/"}),
              HasSubstr("--server"));
  EXPECT_THAT(ParseError({"-f", "x", "get", "http://a/"}),
              HasSubstr("-f/--file"));
}

TEST(ParseFetchctlArgsTest, Health) {
  absl::StatusOr<FetchctlOptions> options =
      Parse({"--server", "10.0.0.1:1", "--deadline", "2", "health"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->command, Command::kHealth);
  EXPECT_EQ(options->server, "10.0.0.1:1");
  EXPECT_EQ(options->rpc_deadline, absl::Seconds(2));
  EXPECT_TRUE(options->urls.empty());

  absl::StatusOr<FetchctlOptions> from_env = Parse({"health"}, "10.0.0.2:2");
  ASSERT_TRUE(from_env.ok()) << from_env.status();
  EXPECT_EQ(from_env->server, "10.0.0.2:2");

  EXPECT_THAT(ParseError({"health", "fetch.v1.FetchService"}),
              HasSubstr("health: unexpected argument 'fetch.v1.FetchService'"));
  EXPECT_THAT(ParseError({"-f", "x", "health"}), HasSubstr("-f/--file"));
  EXPECT_FALSE(BuildBatchRequest(*options).ok());
}

TEST(ParseFetchctlArgsTest, CommandErrors) {
  EXPECT_THAT(ParseError({}), HasSubstr("missing command"));
  EXPECT_THAT(ParseError({"-q"}), HasSubstr("missing command"));
  EXPECT_THAT(
      ParseError({"fetch", "http://a/"}),
      AllOf(HasSubstr("unknown command 'fetch'"), HasSubstr("'health'")));
  EXPECT_THAT(ParseError({"get"}), HasSubstr("missing URL"));
  EXPECT_THAT(ParseError({"batch", "urls.txt"}), HasSubstr("'urls.txt'"));
}

TEST(FetchctlUsageTest, ListsEveryFlagAndExitStatus) {
  const std::string usage = FetchctlUsage();
  for (absl::string_view flag :
       {"--server",       "-X, --request", "-H, --header",
        "-d, --data",     "--timeout",     "--connect-timeout",
        "--read-timeout", "--retries",     "-L, --location",
        "--no-location",  "--max-redirs",  "--max-filesize",
        "--fail",         "-f, --file",    "--max-concurrency",
        "--ordered",      "--fail-fast",   "--deadline",
        "--body",         "-q, --quiet",   "--progress",
        "--no-progress",  "-h, --help",    "FETCHD_SERVER",
        "--json",         "-F, --form",    "--data-urlencode",
        "--url-query",    "-u, --user",    "--oauth2-bearer",
        "-v, --verbose"}) {
    EXPECT_THAT(usage, HasSubstr(flag));
  }
  for (absl::string_view code : {"  0  ", "  1  ", "  2  ", "  3  "}) {
    EXPECT_THAT(usage, HasSubstr(code));
  }
  EXPECT_THAT(usage, AllOf(HasSubstr("fetchctl [--server HOST:PORT]"),
                           HasSubstr("health"), HasSubstr("NOT_SERVING")));
}

TEST(ParseBatchInputTest, UrlAndJsonLinesSkippingCommentsAndBlanks) {
  std::istringstream input(
      "# a comment\n"
      "http://a.test/\n"
      "\n"
      "   \t\n"
      "  https://b.test/x  \r\n"
      R"({"id": "c", "url": "http://c.test/", "method": "POST", )"
      R"("headers": [{"name": "X-A", "value": "1"}], "maxRedirects": 2, )"
      R"("timeouts": {"total": "1.5s"}})"
      "\n"
      "#http://skipped.test/\n"
      "http://d.test/");  // No final newline.
  absl::StatusOr<std::vector<fetch::v1::FetchRequest>> requests =
      ParseBatchInput(input);
  ASSERT_TRUE(requests.ok()) << requests.status();
  ASSERT_EQ(requests->size(), 4u);
  EXPECT_EQ((*requests)[0].url(), "http://a.test/");
  EXPECT_EQ((*requests)[1].url(), "https://b.test/x");
  const fetch::v1::FetchRequest& json = (*requests)[2];
  EXPECT_EQ(json.id(), "c");
  EXPECT_EQ(json.url(), "http://c.test/");
  EXPECT_EQ(json.method(), "POST");
  EXPECT_THAT(HeaderLines(json), ElementsAre("X-A=1"));
  EXPECT_EQ(json.max_redirects(), 2u);
  EXPECT_EQ(FromProto(json.timeouts().total()), absl::Milliseconds(1500));
  EXPECT_EQ((*requests)[3].url(), "http://d.test/");
}

// fetchctl batch sends each request as it reads it: the reader hands out
// one at a time and says whether more can be read without waiting.
TEST(BatchInputReaderTest, HandsOutOneRequestAtATime) {
  std::istringstream input(
      "http://a.example/\n# comment\n\n"
      "{\"url\": \"http://b.example/\", \"method\": \"POST\"}\n"
      "{not json\n");
  BatchInputReader reader(input);
  absl::StatusOr<std::optional<fetch::v1::FetchRequest>> next = reader.Next();
  ASSERT_TRUE(next.ok()) << next.status();
  ASSERT_TRUE(next->has_value());
  EXPECT_EQ((*next)->url(), "http://a.example/");
  EXPECT_TRUE(reader.Ready());
  next = reader.Next();
  ASSERT_TRUE(next.ok()) << next.status();
  ASSERT_TRUE(next->has_value());
  EXPECT_EQ((*next)->method(), "POST");
  next = reader.Next();
  ASSERT_FALSE(next.ok());
  EXPECT_THAT(next.status().message(), HasSubstr("line 5"));
}

TEST(BatchInputReaderTest, EndsWithNullopt) {
  std::istringstream input("http://a.example/\n");
  BatchInputReader reader(input);
  ASSERT_TRUE(reader.Next().ok());
  EXPECT_FALSE(reader.Ready());
  absl::StatusOr<std::optional<fetch::v1::FetchRequest>> next = reader.Next();
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_FALSE(next->has_value());
}

TEST(ParseBatchInputTest, BadJsonNamesTheLine) {
  std::istringstream input(
      "http://a.test/\n"
      "# comment\n"
      "{\"url\": \"http://b.test/\"\n");
  absl::StatusOr<std::vector<fetch::v1::FetchRequest>> requests =
      ParseBatchInput(input);
  ASSERT_FALSE(requests.ok());
  EXPECT_EQ(requests.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(requests.status().message(), HasSubstr("line 3"));
}

TEST(ParseBatchInputTest, UnknownJsonFieldIsAnError) {
  std::istringstream input("{\"url\": \"http://a/\", \"methd\": \"GET\"}\n");
  absl::StatusOr<std::vector<fetch::v1::FetchRequest>> requests =
      ParseBatchInput(input);
  ASSERT_FALSE(requests.ok());
  EXPECT_THAT(requests.status().message(), HasSubstr("line 1"));
}

TEST(ParseBatchInputTest, EmptyInputHasNoRequests) {
  std::istringstream input("# nothing\n\n");
  absl::StatusOr<std::vector<fetch::v1::FetchRequest>> requests =
      ParseBatchInput(input);
  ASSERT_TRUE(requests.ok()) << requests.status();
  EXPECT_TRUE(requests->empty());
}

TEST(BuildBatchRequestTest, GetSendsOneRequestPerUrlWithTheDefaults) {
  absl::StatusOr<FetchctlOptions> options =
      Parse({"-H", "X-A: 1", "--ordered", "get", "http://a/", "http://b/"});
  ASSERT_TRUE(options.ok()) << options.status();
  absl::StatusOr<fetch::v1::BatchRequest> batch = BuildBatchRequest(*options);
  ASSERT_TRUE(batch.ok()) << batch.status();
  ASSERT_EQ(batch->requests_size(), 2);
  EXPECT_EQ(batch->requests(0).url(), "http://a/");
  EXPECT_EQ(batch->requests(1).url(), "http://b/");
  EXPECT_EQ(batch->requests(0).headers_size(), 0);
  EXPECT_THAT(HeaderLines(batch->defaults()), ElementsAre("X-A=1"));
  EXPECT_EQ(batch->defaults().url(), "");
  EXPECT_TRUE(batch->ordered());
}

TEST(BuildBatchRequestTest, BatchReadsTheInputFile) {
  const std::string path =
      WriteTempFile("fetchctl_batch.txt",
                    "http://a/\n{\"url\": \"http://b/\", \"id\": \"b\"}\n");
  absl::StatusOr<FetchctlOptions> options =
      Parse({"batch", "-f", path, "--fail-fast"});
  ASSERT_TRUE(options.ok()) << options.status();
  absl::StatusOr<fetch::v1::BatchRequest> batch = BuildBatchRequest(*options);
  ASSERT_TRUE(batch.ok()) << batch.status();
  ASSERT_EQ(batch->requests_size(), 2);
  EXPECT_EQ(batch->requests(0).url(), "http://a/");
  EXPECT_EQ(batch->requests(1).id(), "b");
  EXPECT_TRUE(batch->fail_fast());
}

TEST(BuildBatchRequestTest, InputFileErrorsNameTheFile) {
  absl::StatusOr<FetchctlOptions> missing =
      Parse({"batch", "-f", "/nonexistent/fetchctl/urls"});
  ASSERT_TRUE(missing.ok()) << missing.status();
  absl::StatusOr<fetch::v1::BatchRequest> batch = BuildBatchRequest(*missing);
  ASSERT_FALSE(batch.ok());
  EXPECT_THAT(batch.status().message(),
              HasSubstr("/nonexistent/fetchctl/urls"));

  const std::string bad_path =
      WriteTempFile("fetchctl_bad.txt", "http://a/\n{not json}\n");
  absl::StatusOr<FetchctlOptions> bad = Parse({"batch", "-f", bad_path});
  ASSERT_TRUE(bad.ok()) << bad.status();
  batch = BuildBatchRequest(*bad);
  ASSERT_FALSE(batch.ok());
  EXPECT_THAT(batch.status().message(), HasSubstr(bad_path + ": line 2"));

  const std::string empty_path =
      WriteTempFile("fetchctl_empty.txt", "# no requests\n");
  absl::StatusOr<FetchctlOptions> empty = Parse({"batch", "-f", empty_path});
  ASSERT_TRUE(empty.ok()) << empty.status();
  batch = BuildBatchRequest(*empty);
  ASSERT_FALSE(batch.ok());
  EXPECT_THAT(batch.status().message(), HasSubstr("no requests"));
}

TEST(ParseFetchctlArgsTest, PlaintextAndNoTokenByDefault) {
  absl::StatusOr<FetchctlOptions> options = Parse({"health"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_FALSE(options->connection.tls);
  EXPECT_EQ(options->connection.bearer_token, "");
}

TEST(ParseFetchctlArgsTest, ServerCertificatesAreReadAndImplyTls) {
  const std::string ca =
      WriteTempFile("fetchctl_ca.pem", "-----BEGIN CERTIFICATE-----\nca\n");
  const std::string cert =
      WriteTempFile("fetchctl_cert.pem", "-----BEGIN CERTIFICATE-----\ncert\n");
  const std::string key =
      WriteTempFile("fetchctl_key.pem", "-----BEGIN PRIVATE KEY-----\nkey\n");
  absl::StatusOr<FetchctlOptions> options =
      Parse({"--server-cacert", ca, "--server-cert=" + cert, "--server-key",
             key, "--tls-server-name", "fetchd.internal", "health"});
  ASSERT_TRUE(options.ok()) << options.status();
  const ServerConnection& c = options->connection;
  EXPECT_TRUE(c.tls);
  EXPECT_EQ(c.ca_cert_pem, "-----BEGIN CERTIFICATE-----\nca\n");
  EXPECT_EQ(c.client_cert_pem, "-----BEGIN CERTIFICATE-----\ncert\n");
  EXPECT_EQ(c.client_key_pem, "-----BEGIN PRIVATE KEY-----\nkey\n");
  EXPECT_EQ(c.tls_server_name, "fetchd.internal");

  options = Parse({"--tls", "get", "http://a.test/"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_TRUE(options->connection.tls);
  EXPECT_EQ(options->connection.ca_cert_pem, "");
}

TEST(ParseFetchctlArgsTest, BadServerCertificateFlags) {
  const std::string cert = WriteTempFile("fetchctl_cert2.pem",
                                         "-----BEGIN CERTIFICATE-----\ncert\n");
  EXPECT_THAT(ParseError({"--server-cert", cert, "health"}),
              HasSubstr("--server-key: missing: --server-cert and "
                        "--server-key go together"));
  EXPECT_THAT(
      ParseError(
          {"--server-cacert", ::testing::TempDir() + "nope.pem", "health"}),
      AllOf(HasSubstr("--server-cacert: cannot open"), HasSubstr("nope.pem")));
  const std::string junk = WriteTempFile("fetchctl_junk.pem", "hello");
  EXPECT_THAT(ParseError({"--server-cacert", junk, "health"}),
              HasSubstr("--server-cacert: '" + junk + "' is not a PEM file"));
}

TEST(ParseFetchctlArgsTest, TokenFromFileOrEnvironment) {
  const std::string token_file =
      WriteTempFile("fetchctl_token", "  file-token-0123456789  \nignored\n");
  absl::StatusOr<FetchctlOptions> options = ParseFetchctlArgs(
      {"fetchctl", "--token-file", token_file, "health"}, "", "env-token");
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->connection.bearer_token, "file-token-0123456789");
  EXPECT_FALSE(options->connection.tls);

  options = ParseFetchctlArgs({"fetchctl", "health"}, "", " env-token\n");
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->connection.bearer_token, "env-token");

  const std::string empty = WriteTempFile("fetchctl_empty_token", "\n");
  const std::string message = ParseError({"--token-file", empty, "health"});
  EXPECT_THAT(message, HasSubstr("--token-file: '" + empty +
                                 "' holds no token on its first line"));
}

TEST(ParseFetchctlArgsTest, JsonBodyImpliesPost) {
  const std::string path = WriteTempFile("body.json", "[1, 2]");
  absl::StatusOr<FetchctlOptions> options =
      Parse({"--json", "{\"a\": 1}", "get", "http://a.test/"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->batch_template.defaults().json(), "{\"a\": 1}");
  EXPECT_EQ(options->batch_template.defaults().method(), "POST");
  options = Parse({"-X", "PUT", "--json", "@" + path, "get", "http://a.test/"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->batch_template.defaults().json(), "[1, 2]");
  EXPECT_EQ(options->batch_template.defaults().method(), "PUT");
}

TEST(ParseFetchctlArgsTest, FormPartsLikeCurl) {
  const std::string path = WriteTempFile("upload.bin", std::string("\0z", 2));
  absl::StatusOr<FetchctlOptions> options =
      Parse({"-F", "title=a;b", "-F", "file=@" + path + ";type=image/png", "-F",
             "named=@" + path + ";filename=x.png", "-F", "text=<" + path, "get",
             "http://a.test/"});
  ASSERT_TRUE(options.ok()) << options.status();
  const fetch::v1::FetchRequest& d = options->batch_template.defaults();
  EXPECT_EQ(d.method(), "POST");
  ASSERT_EQ(d.multipart().parts_size(), 4);
  EXPECT_EQ(d.multipart().parts(0).name(), "title");
  EXPECT_EQ(d.multipart().parts(0).data(), "a;b");
  EXPECT_EQ(d.multipart().parts(0).filename(), "");
  EXPECT_EQ(d.multipart().parts(1).data(), std::string("\0z", 2));
  EXPECT_EQ(d.multipart().parts(1).filename(), "upload.bin");
  EXPECT_EQ(d.multipart().parts(1).content_type(), "image/png");
  EXPECT_EQ(d.multipart().parts(2).filename(), "x.png");
  EXPECT_EQ(d.multipart().parts(3).filename(), "");
  EXPECT_EQ(d.multipart().parts(3).data(), std::string("\0z", 2));

  EXPECT_THAT(ParseError({"-F", "novalue", "get", "http://a.test/"}),
              HasSubstr("-F/--form: 'novalue': expected NAME=VALUE"));
  EXPECT_THAT(ParseError({"-F", "f=@/no/such/file", "get", "http://a.test/"}),
              HasSubstr("-F/--form: cannot open '/no/such/file'"));
  EXPECT_THAT(
      ParseError({"-F", "f=@" + path + ";size=3", "get", "http://a.test/"}),
      HasSubstr("unknown option 'size=3'"));
}

TEST(ParseFetchctlArgsTest, DataUrlencodeAndUrlQuery) {
  const std::string path = WriteTempFile("value.txt", "from file");
  absl::StatusOr<FetchctlOptions> options =
      Parse({"--data-urlencode", "a=1 2", "--data-urlencode", "b@" + path,
             "--url-query", "q=x=y", "--url-query", "page=2", "get",
             "http://a.test/"});
  ASSERT_TRUE(options.ok()) << options.status();
  const fetch::v1::FetchRequest& d = options->batch_template.defaults();
  EXPECT_EQ(d.method(), "POST");
  ASSERT_EQ(d.form().fields_size(), 2);
  EXPECT_EQ(d.form().fields(0).name(), "a");
  EXPECT_EQ(d.form().fields(0).value(), "1 2");
  EXPECT_EQ(d.form().fields(1).value(), "from file");
  ASSERT_EQ(d.query_size(), 2);
  EXPECT_EQ(d.query(0).name(), "q");
  EXPECT_EQ(d.query(0).value(), "x=y");
  EXPECT_EQ(d.query(1).name(), "page");
  EXPECT_THAT(ParseError({"--url-query", "=v", "get", "http://a.test/"}),
              HasSubstr("--url-query: '=v': expected NAME=VALUE"));
}

TEST(ParseFetchctlArgsTest, OneBodyKind) {
  EXPECT_THAT(ParseError({"-d", "x", "--json", "{}", "get", "http://a.test/"}),
              HasSubstr("--json: cannot be combined with -d/--data"));
  EXPECT_THAT(ParseError({"-F", "a=1", "--data-urlencode", "b=2", "get",
                          "http://a.test/"}),
              HasSubstr("--data-urlencode: cannot be combined with -F/--form"));
  EXPECT_THAT(
      ParseError({"--json", "{}", "--json", "[]", "get", "http://a.test/"}),
      HasSubstr("--json: given more than once"));
}

TEST(ParseFetchctlArgsTest, CredentialsForTheTarget) {
  absl::StatusOr<FetchctlOptions> options =
      Parse({"-u", "user:pa:ss", "get", "http://a.test/"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->batch_template.defaults().basic_auth().username(), "user");
  EXPECT_EQ(options->batch_template.defaults().basic_auth().password(),
            "pa:ss");
  options = Parse({"--oauth2-bearer", "tok", "get", "http://a.test/"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->batch_template.defaults().bearer_token(), "tok");
  // Not the token of fetchd itself.
  EXPECT_EQ(options->connection.bearer_token, "");
  EXPECT_THAT(ParseError({"-u", "a:b", "--oauth2-bearer", "t", "get",
                          "http://a.test/"}),
              HasSubstr("--oauth2-bearer: cannot be combined with -u/--user"));
  const std::string error = ParseError({"-u", "secret", "get", "http://a/"});
  EXPECT_THAT(error, HasSubstr("-u/--user: expected USER:PASSWORD"));
  EXPECT_THAT(error, Not(HasSubstr("secret")));
}

TEST(ParseFetchctlArgsTest, VerboseFlag) {
  absl::StatusOr<FetchctlOptions> options =
      Parse({"-v", "get", "http://a.test/"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_TRUE(options->verbose);
  options = Parse({"get", "http://a.test/"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_FALSE(options->verbose);
}

}  // namespace
}  // namespace fetchd::client

namespace fetchd::client {
namespace {

TEST(ParseFetchctlArgsTest, OutputRawAndChunkBytes) {
  absl::StatusOr<FetchctlOptions> options = Parse(
      {"get", "http://a/", "-o", "out.bin", "--raw", "--chunk-bytes", "4096"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->output_path, "out.bin");
  const fetch::v1::FetchRequest& defaults = options->batch_template.defaults();
  EXPECT_TRUE(defaults.has_decompress());
  EXPECT_FALSE(defaults.decompress());
  EXPECT_EQ(defaults.chunk_bytes(), 4096u);
}

TEST(ParseFetchctlArgsTest, OutputNeedsGetAndOneUrl) {
  EXPECT_THAT(ParseError({"get", "http://a/", "http://b/", "-o", "f"}),
              HasSubstr("-o/--output: writes one body: give one URL, got 2"));
  EXPECT_THAT(ParseError({"batch", "-o", "f"}),
              HasSubstr("-o/--output: only valid with 'get'"));
  EXPECT_THAT(ParseError({"get", "http://a/", "-o", ""}),
              HasSubstr("-o/--output: empty file name"));
}

}  // namespace
}  // namespace fetchd::client

namespace fetchd::client {
namespace {

// Issue 16 item 9: what fetchctl can check itself is a usage error named by
// its flag, before anything is sent.
TEST(ParseFetchctlArgsTest, HeadersFetchdRefusesAreUsageErrors) {
  EXPECT_THAT(ParseError({"-H", "Content-Length: 5", "get", "http://a/"}),
              HasSubstr("-H/--header: 'Content-Length: 5': fetchd sets "
                        "Content-Length itself"));
  EXPECT_THAT(
      ParseError({"-H", "transfer-encoding: chunked", "get", "http://a/"}),
      HasSubstr("-H/--header"));
  EXPECT_THAT(ParseError({"-H", "Bad Name: 1", "get", "http://a/"}),
              HasSubstr("not allowed in an HTTP header name"));
  EXPECT_THAT(ParseError({"-H", "X-A: 1\r\nX-B: 2", "get", "http://a/"}),
              HasSubstr("CR, LF or NUL"));
}

TEST(ParseFetchctlArgsTest, JsonBodyMustBeJson) {
  EXPECT_THAT(ParseError({"--json", "{nope", "get", "http://a/"}),
              HasSubstr("--json: not valid JSON"));
  EXPECT_THAT(ParseError({"--json", "", "get", "http://a/"}),
              HasSubstr("--json: empty"));
}

TEST(ParseFetchctlArgsTest, VersionFlag) {
  absl::StatusOr<FetchctlOptions> options = Parse({"--version"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(options->command, Command::kVersion);
  EXPECT_THAT(FetchctlVersion(), HasSubstr("fetchctl "));
  EXPECT_THAT(FetchctlVersion(), HasSubstr(" build, "));
}

TEST(ParseFetchctlArgsTest, LastOfLocationAndNoLocationWins) {
  absl::StatusOr<FetchctlOptions> options =
      Parse({"--no-location", "get", "http://a/", "-L"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_TRUE(options->batch_template.defaults().follow_redirects());
}

TEST(FetchctlUsageTest, IsGeneratedFromTheFlagsWithCurlStyleNames) {
  const std::string usage = FetchctlUsage();
  EXPECT_THAT(usage, HasSubstr("  -b, --cookie NAME=VALUE"));
  EXPECT_THAT(usage, HasSubstr("      --timeout SECONDS"));
  EXPECT_THAT(usage, HasSubstr("      --version"));
  EXPECT_THAT(usage, HasSubstr("Exit status:\n  0  "));
}

// fetchd's INVALID_ARGUMENT about what a flag set, said as the flag.
TEST(UsageErrorFromServerTest, MapsFieldsBackToFlags) {
  absl::StatusOr<FetchctlOptions> options =
      Parse({"-H", "X-A: 1", "-H", "Host: b.test", "--timeout", "100", "get",
             "http://a/", "http://b/"});
  ASSERT_TRUE(options.ok()) << options.status();
  EXPECT_EQ(UsageErrorFromServer(
                absl::InvalidArgumentError(
                    "defaults.headers[1]: header \"Host\" is not allowed"),
                *options),
            "-H/--header 'Host: b.test': header \"Host\" is not allowed "
            "(fetchd: defaults.headers[1])");
  EXPECT_EQ(
      UsageErrorFromServer(absl::InvalidArgumentError(
                               "defaults.timeouts.total: 1m40s exceeds the "
                               "server maximum 1m"),
                           *options),
      "--timeout: 1m40s exceeds the server maximum 1m (fetchd: "
      "defaults.timeouts.total)");
  EXPECT_EQ(
      UsageErrorFromServer(
          absl::InvalidArgumentError("requests[1].url: not a URL"), *options),
      "URL 'http://b/': not a URL (fetchd: requests[1].url)");
  EXPECT_EQ(UsageErrorFromServer(
                absl::InvalidArgumentError("cookies[0].name: empty"), *options),
            "-b/--cookie: empty (fetchd: cookies[0].name)");
  EXPECT_EQ(UsageErrorFromServer(
                absl::InvalidArgumentError("defaults.proxy.username: too long"),
                *options),
            "--proxy-user: too long (fetchd: defaults.proxy.username)");
  // Not about a flag, or not INVALID_ARGUMENT: left as the RPC error.
  EXPECT_EQ(
      UsageErrorFromServer(
          absl::InvalidArgumentError("requests: the batch is empty"), *options),
      std::nullopt);
  EXPECT_EQ(
      UsageErrorFromServer(
          absl::UnavailableError("defaults.headers[0]: draining"), *options),
      std::nullopt);
}

}  // namespace
}  // namespace fetchd::client
