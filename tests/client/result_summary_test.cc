#include "client/result_summary.h"

#include <string>

#include "fetch/v1/fetch.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"

namespace fetchd::client {
namespace {

using google::protobuf::util::TimeUtil;

TEST(VerboseSummaryTest, ShowsStatusPeerReuseTimingsHopsAndHeaders) {
  fetch::v1::FetchResult r;
  r.set_index(2);
  r.set_id("r2");
  r.set_final_url("http://127.0.0.1:8080/ok");
  r.set_status(200);
  r.set_http_version("1.1");
  r.set_bytes_received(2);
  r.set_attempts(1);
  r.set_remote_address("127.0.0.1:8080");
  r.set_connection_reused(true);
  fetch::v1::Timings& t = *r.mutable_timings();
  *t.mutable_queue_wait() = TimeUtil::MicrosecondsToDuration(10);
  *t.mutable_first_byte() = TimeUtil::MicrosecondsToDuration(412);
  *t.mutable_total() = TimeUtil::MicrosecondsToDuration(450);
  *t.mutable_redirect() = TimeUtil::MicrosecondsToDuration(1500);
  auto* hop = r.add_redirect_history();
  hop->set_url("http://127.0.0.1:8080/old");
  hop->set_status(301);
  auto* h = r.add_headers();
  h->set_name("Content-Length");
  h->set_value("2");
  EXPECT_EQ(VerboseSummary(r),
            "* [2] r2 http://127.0.0.1:8080/ok\n"
            "* HTTP/1.1 200, 2 bytes received, 0 bytes sent, 1 attempt\n"
            "* remote 127.0.0.1:8080, connection reused\n"
            "* queue wait 0.010 ms, dns 0.000 ms, connect 0.000 ms, tls 0.000 "
            "ms,\n"
            "*   first byte 0.412 ms, total 0.450 ms, redirect 1.500 ms\n"
            "* redirect 1: 301 http://127.0.0.1:8080/old\n"
            "< Content-Length: 2\n");
}

TEST(VerboseSummaryTest, FailedRequestShowsTheError) {
  fetch::v1::FetchResult r;
  r.set_final_url("http://127.0.0.1:1/");
  r.set_attempts(3);
  r.set_error(fetch::v1::ERROR_KIND_CONNECT);
  r.set_error_message("Connection refused");
  const std::string summary = VerboseSummary(r);
  EXPECT_THAT(summary, ::testing::HasSubstr("* no response, 3 attempts\n"));
  EXPECT_THAT(summary,
              ::testing::HasSubstr("* error CONNECT: Connection refused\n"));
  EXPECT_THAT(summary, ::testing::Not(::testing::HasSubstr("remote")));
  EXPECT_THAT(summary, ::testing::Not(::testing::HasSubstr("politeness")));
}

TEST(VerboseSummaryTest, PolitenessSaysWhatHeldTheRequest) {
  fetch::v1::FetchResult r;
  r.set_final_url("http://api.test/");
  r.set_error(fetch::v1::ERROR_KIND_CIRCUIT_OPEN);
  r.set_error_message("politeness rule \"api\": circuit breaker open");
  r.mutable_politeness()->set_rule("api");
  r.mutable_politeness()->set_rate_limited(true);
  r.mutable_politeness()->set_retry_denied(true);
  const std::string summary = VerboseSummary(r);
  EXPECT_THAT(summary, ::testing::HasSubstr(
                           "* politeness rule api: waited for the host's rate, "
                           "retry denied by the retry budget\n"));
  EXPECT_THAT(summary, ::testing::HasSubstr("* error CIRCUIT_OPEN: politeness "
                                            "rule \"api\": circuit breaker "
                                            "open\n"));
}

}  // namespace
}  // namespace fetchd::client
