// Response body encodings through the engine (worker pool, real libcurl,
// no gRPC): gzip, deflate, br and
// zstd decoded by default (with the matching Accept-Encoding), raw bytes on
// request (FetchRequest.decompress = false), and the body cap counting
// decoded bytes for every encoding (decompression bombs).
#include <zlib.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_http_server.h"
#include "tests/transport/transport_harness.h"

namespace fetchd::testing {
namespace {

using fetch::v1::FetchResult;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

const std::vector<std::string>& Encodings() {
  static const auto* const kEncodings =
      new std::vector<std::string>{"gzip", "deflate", "br", "zstd"};
  return *kEncodings;
}

// The "accept-encoding: ..." lines of a /request-headers body.
std::vector<std::string> AcceptEncodingLines(const std::string& body) {
  std::vector<std::string> lines;
  for (absl::string_view line : absl::StrSplit(body, '\n')) {
    if (absl::StartsWith(line, "accept-encoding:")) {
      lines.emplace_back(line);
    }
  }
  return lines;
}

// zlib's own inflate of a gzip member, for checking raw bodies.
std::string Gunzip(const std::string& data) {
  z_stream z{};
  if (inflateInit2(&z, 15 + 16) != Z_OK) return "";
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  std::string out;
  char buf[64 * 1024];
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof(buf);
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof(buf) - z.avail_out);
  }
  inflateEnd(&z);
  return rc == Z_STREAM_END ? out : "";
}

class DecompressionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(http_.Start().ok());
    ASSERT_NO_FATAL_FAILURE(fetchd_.Start());
  }

  TestHttpServer http_;
  TransportHarness fetchd_;
};

TEST_F(DecompressionTest, EveryEncodingIsDecodedByDefault) {
  std::vector<std::unique_ptr<core::FetchJob>> jobs;
  for (const std::string& encoding : Encodings()) {
    jobs.push_back(TransportHarness::Job(http_.Url(
        absl::StrCat("/encoded?encoding=", encoding, "&bytes=300000"))));
  }
  const auto results = fetchd_.Run(std::move(jobs));
  const std::string expected = TestBodyPattern(300000);
  for (size_t i = 0; i < Encodings().size(); ++i) {
    SCOPED_TRACE(Encodings()[i]);
    EXPECT_EQ(results[i].error(), fetch::v1::ERROR_KIND_NONE)
        << results[i].error_message();
    EXPECT_EQ(results[i].body(), expected);
    EXPECT_EQ(results[i].bytes_received(), 300000u);
    // Headers as received: they describe the encoded body.
    EXPECT_EQ(HeaderValue(results[i], "content-encoding"), Encodings()[i]);
    EXPECT_LT(std::stoull(HeaderValue(results[i], "content-length")), 300000u);
  }
}

TEST_F(DecompressionTest, AcceptEncodingNamesEveryDecodedCoding) {
  const std::string url = http_.Url("/request-headers");
  // The caller's own header replaces fetchd's.
  auto own = TransportHarness::Job(url);
  own->header_lines.push_back("Accept-Encoding: br");
  // Raw: nothing added ...
  auto raw = TransportHarness::Job(url);
  raw->decompress = false;
  // ... and the caller's header goes out unchanged.
  auto raw_own = TransportHarness::Job(url);
  raw_own->decompress = false;
  raw_own->header_lines.push_back(
      "Accept-Encoding: gzip;q=1.0, identity;q=0.5");
  const auto results =
      fetchd_.Run(Jobs(TransportHarness::Job(url), std::move(own),
                       std::move(raw), std::move(raw_own)));

  const std::vector<std::string> lines = AcceptEncodingLines(results[0].body());
  ASSERT_EQ(lines.size(), 1u) << results[0].body();
  for (const std::string& encoding : Encodings()) {
    EXPECT_THAT(lines[0], HasSubstr(encoding));
  }
  EXPECT_THAT(AcceptEncodingLines(results[1].body()),
              ElementsAre("accept-encoding: br"));
  EXPECT_THAT(AcceptEncodingLines(results[2].body()), ElementsAre());
  EXPECT_THAT(AcceptEncodingLines(results[3].body()),
              ElementsAre("accept-encoding: gzip;q=1.0, identity;q=0.5"));
}

TEST_F(DecompressionTest, RawBodiesComeAsSent) {
  std::vector<std::unique_ptr<core::FetchJob>> jobs;
  for (const std::string& encoding : Encodings()) {
    auto job = TransportHarness::Job(http_.Url(
        absl::StrCat("/encoded?encoding=", encoding, "&bytes=300000")));
    job->decompress = false;
    jobs.push_back(std::move(job));
  }
  const auto results = fetchd_.Run(std::move(jobs));
  for (size_t i = 0; i < Encodings().size(); ++i) {
    SCOPED_TRACE(Encodings()[i]);
    const FetchResult& r = results[i];
    EXPECT_EQ(r.error(), fetch::v1::ERROR_KIND_NONE) << r.error_message();
    EXPECT_EQ(HeaderValue(r, "content-encoding"), Encodings()[i]);
    // Exactly the bytes on the wire.
    EXPECT_EQ(std::to_string(r.body().size()),
              HeaderValue(r, "content-length"));
    EXPECT_EQ(r.bytes_received(), r.body().size());
    EXPECT_LT(r.body().size(), 300000u);
  }
  EXPECT_EQ(results[0].body().substr(0, 2), "\x1f\x8b");
  EXPECT_EQ(Gunzip(results[0].body()), TestBodyPattern(300000));
  EXPECT_EQ(results[1].body()[0], '\x78');  // a zlib header
  EXPECT_EQ(results[3].body().substr(0, 4), "\x28\xb5\x2f\xfd");
}

// 256 MiB of zeros, a few kB to a few hundred kB on the wire in each
// encoding: the cap counts decoded bytes, so each transfer stops there.
TEST_F(DecompressionTest, BombsOfEveryEncodingStopAtTheDecodedCap) {
  std::vector<std::unique_ptr<core::FetchJob>> jobs;
  for (const std::string& encoding : Encodings()) {
    auto job = TransportHarness::Job(
        http_.Url(absl::StrCat("/encoded?encoding=", encoding,
                               "&bytes=", 256 << 20, "&content=zeros")));
    job->max_body_bytes = 1 << 20;
    jobs.push_back(std::move(job));
  }
  // Raw, the cap counts the bytes on the wire: the same gzip bomb fits.
  auto raw = TransportHarness::Job(http_.Url(absl::StrCat(
      "/encoded?encoding=gzip&bytes=", 256 << 20, "&content=zeros")));
  raw->max_body_bytes = 1 << 20;
  raw->decompress = false;
  jobs.push_back(std::move(raw));
  const auto results = fetchd_.Run(std::move(jobs));
  for (size_t i = 0; i < Encodings().size(); ++i) {
    SCOPED_TRACE(Encodings()[i]);
    EXPECT_EQ(results[i].error(), fetch::v1::ERROR_KIND_BODY_TOO_LARGE)
        << results[i].error_message();
    EXPECT_THAT(results[i].error_message(), HasSubstr("max_body_bytes"));
    EXPECT_LE(results[i].body().size(), size_t{1} << 20);
    EXPECT_EQ(results[i].attempts(), 1u);
  }
  EXPECT_EQ(results[4].error(), fetch::v1::ERROR_KIND_NONE)
      << results[4].error_message();
  EXPECT_LT(results[4].body().size(), size_t{1} << 20);
}

// Streamed, the decoded cap holds too.
TEST_F(DecompressionTest, AStreamedBombStopsAtItsCap) {
  auto job = TransportHarness::Job(http_.Url(absl::StrCat(
      "/encoded?encoding=br&bytes=", 256 << 20, "&content=zeros")));
  job->max_body_bytes = 8 << 20;
  job->stream_body = true;
  auto batch = fetchd_.NewBatch();
  const FetchResult result = fetchd_.Run(Jobs(std::move(job)), batch).at(0);
  const uint64_t received = batch->StreamedBody(0).size();
  EXPECT_EQ(result.error(), fetch::v1::ERROR_KIND_BODY_TOO_LARGE);
  EXPECT_LE(received, uint64_t{8} << 20);
  EXPECT_EQ(result.bytes_received(), received);
}

}  // namespace
}  // namespace fetchd::testing
