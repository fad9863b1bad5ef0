// Small helpers shared by the API tests (tests/api/service_harness.h) and
// the engine tests (tests/transport/transport_harness.h): reading a
// FetchResult and building test URLs.
#ifndef FETCHD_TESTS_TESTING_FETCH_HELPERS_H_
#define FETCHD_TESTS_TESTING_FETCH_HELPERS_H_

#include <curl/curl.h>

#include <string>

#include "absl/strings/match.h"
#include "fetch/v1/fetch.pb.h"

namespace fetchd::testing {

// The value of the first response header called `name` (any case), or "".
inline std::string HeaderValue(const fetch::v1::FetchResult& result,
                               const std::string& name) {
  for (const auto& h : result.headers()) {
    if (absl::EqualsIgnoreCase(h.name(), name)) return h.value();
  }
  return "";
}

// `text` percent-encoded for a query parameter value.
inline std::string UrlEncode(const std::string& text) {
  char* encoded =
      curl_easy_escape(nullptr, text.data(), static_cast<int>(text.size()));
  std::string out = encoded != nullptr ? encoded : "";
  curl_free(encoded);
  return out;
}

}  // namespace fetchd::testing

#endif  // FETCHD_TESTS_TESTING_FETCH_HELPERS_H_
