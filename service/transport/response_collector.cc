#include "service/transport/response_collector.h"

#include <algorithm>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/util/time_util.h"

namespace fetchd::transport {
namespace {

using google::protobuf::util::TimeUtil;

void SetDuration(google::protobuf::Duration* out, curl_off_t micros) {
  *out = TimeUtil::MicrosecondsToDuration(std::max<curl_off_t>(0, micros));
}

absl::string_view Trim(absl::string_view s) {
  while (!s.empty() && (s.back() == '\r' || s.back() == '\n' ||
                        s.back() == ' ' || s.back() == '\t')) {
    s.remove_suffix(1);
  }
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
    s.remove_prefix(1);
  }
  return s;
}

}  // namespace

bool CollectHeaderLine(absl::string_view line, core::FetchJob& job,
                       ResponseHeaderState& state,
                       fetch::v1::FetchResult& result) {
  state.bytes += line.size();
  if (state.bytes > job.max_response_header_bytes) return false;
  if (line.substr(0, 5) == "HTTP/") {
    // A new response (after 100 Continue): keep only the last.
    result.clear_headers();
    state.bytes = line.size();
    state.has_location = false;
    return true;
  }
  const size_t colon = line.find(':');
  if (colon == absl::string_view::npos || colon == 0) return true;
  fetch::v1::Header* header = result.add_headers();
  header->set_name(std::string(Trim(line.substr(0, colon))));
  header->set_value(std::string(Trim(line.substr(colon + 1))));
  if (absl::EqualsIgnoreCase(header->name(), "set-cookie")) {
    job.set_cookies.push_back(header->value());
  }
  // Size the body once instead of growing it chunk by chunk. Only a hint:
  // the cap is enforced on the bytes that arrive (decoded).
  uint64_t length = 0;
  if (absl::EqualsIgnoreCase(header->name(), "location")) {
    state.has_location = true;
  } else if (!job.stream_body &&
             absl::EqualsIgnoreCase(header->name(), "content-length") &&
             absl::SimpleAtoi(header->value(), &length)) {
    result.mutable_body()->reserve(
        static_cast<size_t>(std::min(length, job.max_body_bytes)));
  }
  return true;
}

void CollectTransferInfo(CURL* easy, bool connected, uint64_t body_bytes,
                         fetch::v1::FetchResult& result) {
  long status = 0;  // NOLINT(google-runtime-int)
  if (curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK) {
    result.set_status(static_cast<uint32_t>(status));
  }
  char* url = nullptr;
  if (curl_easy_getinfo(easy, CURLINFO_EFFECTIVE_URL, &url) == CURLE_OK &&
      url != nullptr) {
    result.set_final_url(url);
  }
  char* ip = nullptr;
  long port = 0;  // NOLINT(google-runtime-int)
  if (curl_easy_getinfo(easy, CURLINFO_PRIMARY_IP, &ip) == CURLE_OK &&
      ip != nullptr && ip[0] != '\0' &&
      curl_easy_getinfo(easy, CURLINFO_PRIMARY_PORT, &port) == CURLE_OK) {
    const absl::string_view addr(ip);
    result.set_remote_address(addr.find(':') == absl::string_view::npos
                                  ? absl::StrCat(addr, ":", port)
                                  : absl::StrCat("[", addr, "]:", port));
  }
  long version = 0;  // NOLINT(google-runtime-int)
  if (curl_easy_getinfo(easy, CURLINFO_HTTP_VERSION, &version) == CURLE_OK) {
    switch (version) {
      case CURL_HTTP_VERSION_1_0:
        result.set_http_version("1.0");
        break;
      case CURL_HTTP_VERSION_1_1:
        result.set_http_version("1.1");
        break;
      case CURL_HTTP_VERSION_2_0:
        result.set_http_version("2");
        break;
      case CURL_HTTP_VERSION_3:
        result.set_http_version("3");
        break;
      default:
        break;
    }
  }
  long connects = 0;  // NOLINT(google-runtime-int)
  if (curl_easy_getinfo(easy, CURLINFO_NUM_CONNECTS, &connects) == CURLE_OK) {
    result.set_connection_reused(connected && connects == 0);
  }
  curl_off_t uploaded = 0;
  if (curl_easy_getinfo(easy, CURLINFO_SIZE_UPLOAD_T, &uploaded) == CURLE_OK) {
    result.set_bytes_sent(static_cast<uint64_t>(uploaded));
  }
  result.set_bytes_received(body_bytes);

  curl_off_t dns = 0, connect = 0, tls = 0, first_byte = 0, total = 0;
  curl_easy_getinfo(easy, CURLINFO_NAMELOOKUP_TIME_T, &dns);
  curl_easy_getinfo(easy, CURLINFO_CONNECT_TIME_T, &connect);
  curl_easy_getinfo(easy, CURLINFO_APPCONNECT_TIME_T, &tls);
  curl_easy_getinfo(easy, CURLINFO_STARTTRANSFER_TIME_T, &first_byte);
  curl_easy_getinfo(easy, CURLINFO_TOTAL_TIME_T, &total);
  fetch::v1::Timings* timings = result.mutable_timings();
  SetDuration(timings->mutable_dns(), dns);
  SetDuration(timings->mutable_connect(), connect > 0 ? connect - dns : 0);
  SetDuration(timings->mutable_tls(), tls > 0 ? tls - connect : 0);
  SetDuration(timings->mutable_first_byte(), first_byte);
  SetDuration(timings->mutable_total(), total);
}

}  // namespace fetchd::transport
