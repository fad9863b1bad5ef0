// The query, body kinds and credentials of a FetchRequest, through
// RequestValidator::Build: what the job carries, and every rule's error.
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "fetch/v1/config.pb.h"
#include "fetch/v1/fetch.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/api/request_validation.h"
#include "service/config/server_config.h"
#include "service/core/fetch_job.h"
#include "service/policy/policy_config.h"

namespace fetchd::api {
namespace {

using fetch::v1::FetchRequest;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::StartsWith;

FetchRequest Post(const std::string& url = "http://127.0.0.1/p") {
  FetchRequest r;
  r.set_url(url);
  r.set_method("POST");
  return r;
}

void AddQuery(FetchRequest* r, const std::string& name,
              const std::string& value) {
  fetch::v1::QueryParam* q = r->add_query();
  q->set_name(name);
  q->set_value(value);
}

fetch::v1::MultipartPart* AddPart(FetchRequest* r, const std::string& name,
                                  const std::string& data) {
  fetch::v1::MultipartPart* p = r->mutable_multipart()->add_parts();
  p->set_name(name);
  p->set_data(data);
  return p;
}

class RequestContentTest : public ::testing::Test {
 protected:
  RequestContentTest()
      : config_(Config()),
        gate_(*policy::DestinationGateFromConfig(config_.policy())),
        validator_(config_, gate_.get()) {}

  static fetch::v1::ServerConfig Config() {
    fetch::v1::ServerConfig config = config::DefaultServerConfig();
    config.mutable_policy()->add_allow()->set_cidr("127.0.0.0/8");
    config.mutable_request_bounds()->set_max_request_body_bytes(100);
    return config;
  }

  absl::StatusOr<std::unique_ptr<core::FetchJob>> Build(
      const FetchRequest& request,
      const FetchRequest& batch_defaults = FetchRequest()) const {
    fetch::v1::BatchRequest batch;
    *batch.mutable_defaults() = batch_defaults;
    *batch.add_requests() = request;
    if (absl::Status s = validator_.ValidateBatch(batch); !s.ok()) return s;
    return validator_.Build(validator_.EffectiveDefaults(batch_defaults),
                            request, 0);
  }

  std::unique_ptr<core::FetchJob> MustBuild(
      const FetchRequest& request,
      const FetchRequest& batch_defaults = FetchRequest()) const {
    auto job = Build(request, batch_defaults);
    EXPECT_TRUE(job.ok()) << job.status();
    return job.ok() ? *std::move(job) : nullptr;
  }

  std::string Error(const FetchRequest& request,
                    const FetchRequest& batch_defaults = FetchRequest()) const {
    auto job = Build(request, batch_defaults);
    EXPECT_FALSE(job.ok());
    if (job.ok()) return "";
    EXPECT_EQ(job.status().code(), absl::StatusCode::kInvalidArgument);
    return std::string(job.status().message());
  }

  const fetch::v1::ServerConfig config_;
  const std::shared_ptr<const policy::DestinationGate> gate_;
  const RequestValidator validator_;
};

TEST_F(RequestContentTest, QueryParamsAreEncodedAndAppendedInOrder) {
  FetchRequest defaults;
  AddQuery(&defaults, "key", "k");
  FetchRequest r;
  r.set_url("http://127.0.0.1/p?a=1#frag");
  AddQuery(&r, "q", "x y&z=1");
  AddQuery(&r, "n=m", "\xc3\xa9/");
  AddQuery(&r, "a", "");
  auto job = MustBuild(r, defaults);
  ASSERT_NE(job, nullptr);
  // (curl's URL API writes the percent-encodings in lower case.)
  EXPECT_EQ(job->url,
            "http://127.0.0.1/p?a=1&key=k&q=x%20y%26z%3d1&n%3dm=%c3%a9%2f&a=#"
            "frag");

  FetchRequest empty_name;
  empty_name.set_url("http://127.0.0.1/");
  AddQuery(&empty_name, "", "v");
  EXPECT_EQ(Error(empty_name), "query[0].name: is empty");

  FetchRequest too_long;
  too_long.set_url("http://127.0.0.1/");
  AddQuery(&too_long, "q",
           std::string(config_.request_bounds().max_url_bytes(), 'x'));
  EXPECT_THAT(Error(too_long), StartsWith("query: "));
}

TEST_F(RequestContentTest, JsonBodySetsContentTypeUnlessGiven) {
  FetchRequest r = Post();
  r.set_json(R"({"a": [1, "x"]})");
  auto job = MustBuild(r);
  ASSERT_NE(job, nullptr);
  EXPECT_EQ(job->body, R"({"a": [1, "x"]})");
  EXPECT_THAT(job->header_lines, ElementsAre("Content-Type: application/json"));

  fetch::v1::Header* h = r.add_headers();
  h->set_name("content-type");
  h->set_value("application/vnd.api+json");
  job = MustBuild(r);
  ASSERT_NE(job, nullptr);
  EXPECT_THAT(job->header_lines,
              ElementsAre("content-type: application/vnd.api+json"));

  for (const std::string json : {"[1, 2]", "\"text\"", "3.5", "null"}) {
    FetchRequest scalar = Post();
    scalar.set_json(json);
    EXPECT_NE(MustBuild(scalar), nullptr) << json;
  }
}

TEST_F(RequestContentTest, FormBodyIsUrlEncoded) {
  FetchRequest r = Post();
  auto* form = r.mutable_form();
  auto* a = form->add_fields();
  a->set_name("a b");
  a->set_value("1&2=3");
  auto* c = form->add_fields();
  c->set_name("c");
  auto job = MustBuild(r);
  ASSERT_NE(job, nullptr);
  EXPECT_EQ(job->body, "a%20b=1%262%3D3&c=");
  EXPECT_THAT(job->header_lines,
              ElementsAre("Content-Type: application/x-www-form-urlencoded"));
}

TEST_F(RequestContentTest, MultipartPartsGoToTheJob) {
  FetchRequest r = Post();
  AddPart(&r, "field", "value");
  auto* file = AddPart(&r, "upload", std::string("\0\x01", 2));
  file->set_filename("a.bin");
  file->set_content_type("application/x-thing");
  auto job = MustBuild(r);
  ASSERT_NE(job, nullptr);
  EXPECT_THAT(job->body, IsEmpty());
  EXPECT_THAT(job->header_lines, IsEmpty());  // curl sets the boundary
  ASSERT_EQ(job->multipart.size(), 2u);
  EXPECT_EQ(job->multipart[0].name, "field");
  EXPECT_EQ(job->multipart[0].data, "value");
  EXPECT_EQ(job->multipart[1].filename, "a.bin");
  EXPECT_EQ(job->multipart[1].content_type, "application/x-thing");
  EXPECT_EQ(job->multipart[1].data, std::string("\0\x01", 2));
}

TEST_F(RequestContentTest, BodyRulesNameTheFields) {
  struct Case {
    std::string name;
    std::function<void(FetchRequest&)> mutate;
    std::string error;
  };
  const std::vector<Case> cases = {
      {"body and json",
       [](FetchRequest& r) {
         r.set_body("raw");
         r.set_json("{}");
       },
       "json: set together with body"},
      {"body and form",
       [](FetchRequest& r) {
         r.set_body("raw");
         r.mutable_form();
       },
       "form: set together with body"},
      {"empty json", [](FetchRequest& r) { r.set_json(""); }, "json: is empty"},
      {"bad json", [](FetchRequest& r) { r.set_json("{oops"); },
       "json: not valid JSON"},
      {"json too big",
       [](FetchRequest& r) { r.set_json("\"" + std::string(100, 'x') + "\""); },
       "json: 102 bytes exceed the limit of 100"},
      {"form name empty",
       [](FetchRequest& r) { r.mutable_form()->add_fields()->set_value("v"); },
       "form.fields[0].name: is empty"},
      {"form encoded too big",
       [](FetchRequest& r) {
         auto* f = r.mutable_form()->add_fields();
         f->set_name("n");
         f->set_value(std::string(40, '&'));
       },
       "form (encoded): 122 bytes exceed"},
      {"no parts", [](FetchRequest& r) { r.mutable_multipart(); },
       "multipart.parts: is empty"},
      {"part name empty", [](FetchRequest& r) { AddPart(&r, "", "x"); },
       "multipart.parts[0].name: is empty"},
      {"part filename CRLF",
       [](FetchRequest& r) { AddPart(&r, "f", "x")->set_filename("a\r\nb"); },
       "multipart.parts[0].filename: contains CR, LF or NUL"},
      {"part type",
       [](FetchRequest& r) { AddPart(&r, "f", "x")->set_content_type("text"); },
       "multipart.parts[0].content_type: \"text\" is not a media type"},
      {"multipart too big",
       [](FetchRequest& r) {
         AddPart(&r, "a", std::string(60, 'x'));
         AddPart(&r, "b", std::string(60, 'x'));
       },
       "multipart: 122 bytes exceed the limit of 100"},
      {"multipart with content-type",
       [](FetchRequest& r) {
         AddPart(&r, "a", "x");
         auto* h = r.add_headers();
         h->set_name("Content-Type");
         h->set_value("multipart/form-data");
       },
       "multipart: fetchd sets the Content-Type"},
      {"HEAD with a body",
       [](FetchRequest& r) {
         r.set_method("HEAD");
         r.set_json("{}");
       },
       "json: a HEAD request has no body"},
      {"username with colon",
       [](FetchRequest& r) { r.mutable_basic_auth()->set_username("a:b"); },
       "basic_auth.username: contains ':'"},
      {"empty bearer", [](FetchRequest& r) { r.set_bearer_token(""); },
       "bearer_token: is empty"},
      {"bad bearer", [](FetchRequest& r) { r.set_bearer_token("se cret"); },
       "bearer_token: is not a token68"},
      {"bearer and authorization header",
       [](FetchRequest& r) {
         r.set_bearer_token("abc");
         auto* h = r.add_headers();
         h->set_name("authorization");
         h->set_value("Basic eA==");
       },
       "bearer_token: set together with an \"Authorization\" header"},
  };
  for (const Case& c : cases) {
    FetchRequest r = Post();
    c.mutate(r);
    const std::string error = Error(r);
    EXPECT_THAT(error, StartsWith(c.error)) << c.name;
    // Credentials never appear in errors.
    EXPECT_THAT(error, Not(HasSubstr("se cret"))) << c.name;
  }
}

TEST_F(RequestContentTest, BatchDefaultsAreCheckedWithPrefixAndReplaced) {
  FetchRequest defaults;
  defaults.set_body("raw");
  defaults.set_json("{}");
  EXPECT_THAT(Error(Post(), defaults),
              StartsWith("defaults.json: set together with defaults.body"));

  // A request's body kind replaces the defaults' body whatever its kind;
  // a form does not merge with the defaults' form.
  defaults.Clear();
  auto* f = defaults.mutable_form()->add_fields();
  f->set_name("d");
  FetchRequest r = Post();
  r.set_body("mine");
  auto job = MustBuild(r, defaults);
  ASSERT_NE(job, nullptr);
  EXPECT_EQ(job->body, "mine");
  EXPECT_THAT(job->header_lines, IsEmpty());

  FetchRequest form = Post();
  form.mutable_form()->add_fields()->set_name("r");
  job = MustBuild(form, defaults);
  ASSERT_NE(job, nullptr);
  EXPECT_EQ(job->body, "r=");

  // Without a body of its own, the request gets the defaults'.
  job = MustBuild(Post(), defaults);
  ASSERT_NE(job, nullptr);
  EXPECT_EQ(job->body, "d=");
}

TEST_F(RequestContentTest, CredentialsBecomeAnAuthorizationLine) {
  FetchRequest r = Post();
  r.mutable_basic_auth()->set_username("user");
  r.mutable_basic_auth()->set_password("p:ss word");
  auto job = MustBuild(r);
  ASSERT_NE(job, nullptr);
  // base64("user:p:ss word")
  EXPECT_THAT(job->header_lines,
              ElementsAre("Authorization: Basic dXNlcjpwOnNzIHdvcmQ="));

  // The request's credentials replace the defaults' (no field merge).
  FetchRequest defaults;
  defaults.set_bearer_token("default-token");
  FetchRequest basic = Post();
  basic.mutable_basic_auth()->set_username("u");
  job = MustBuild(basic, defaults);
  ASSERT_NE(job, nullptr);
  EXPECT_THAT(job->header_lines, ElementsAre("Authorization: Basic dTo="));
  job = MustBuild(Post(), defaults);
  ASSERT_NE(job, nullptr);
  EXPECT_THAT(job->header_lines,
              ElementsAre("Authorization: Bearer default-token"));
  EXPECT_THAT(job->header_lines, Not(Contains(HasSubstr("Basic"))));

  // The Authorization line counts against the header bytes limit.
  FetchRequest huge = Post();
  huge.set_bearer_token(
      std::string(config_.request_bounds().max_header_bytes(), 'a'));
  EXPECT_THAT(Error(huge), StartsWith("headers: 1 headers of "));

  // An Authorization header in the defaults conflicts too.
  FetchRequest header_defaults;
  auto* h = header_defaults.add_headers();
  h->set_name("Authorization");
  h->set_value("Bearer x");
  EXPECT_THAT(Error(basic, header_defaults),
              AllOf(StartsWith("basic_auth: "), HasSubstr("Authorization")));
}

}  // namespace
}  // namespace fetchd::api
