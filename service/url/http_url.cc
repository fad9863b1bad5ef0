#include "service/url/http_url.h"

#include <curl/curl.h>

#include <memory>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "service/transport/curl_handles.h"

namespace fetchd::url {
namespace {

absl::Status Invalid(absl::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat("url: ", rule));
}

}  // namespace

absl::StatusOr<HttpUrl> ParseHttpUrl(const std::string& url) {
  transport::CurlUrlPtr handle(curl_url());
  if (handle == nullptr) return absl::InternalError("curl_url failed");
  CURLUcode rc = curl_url_set(handle.get(), CURLUPART_URL, url.c_str(),
                              CURLU_NON_SUPPORT_SCHEME);
  if (rc != CURLUE_OK) {
    return Invalid(absl::StrCat("malformed URL: ", curl_url_strerror(rc)));
  }
  const auto get = [&handle](CURLUPart part, unsigned flags,
                             std::string* out) -> CURLUcode {
    char* value = nullptr;
    const CURLUcode code = curl_url_get(handle.get(), part, &value, flags);
    if (code == CURLUE_OK) {
      out->assign(value);
      curl_free(value);
    }
    return code;
  };
  // curl decodes a percent-encoded host after it has normalized the numeric
  // IPv4 forms, so "http://21307%36/" comes out as "http://213076/", which
  // parses as http://0.3.64.84/. Parsing curl's URL again gives the fixed
  // point: what curl will connect to. Each pass has its own handle and
  // reads the URL once: libcurl 7.88 percent-encodes the stored host again
  // on every read of CURLUPART_URL ("%25" becomes "%2525").
  std::string first_pass;
  if (get(CURLUPART_URL, 0, &first_pass) != CURLUE_OK) {
    return Invalid("cannot be normalized");
  }
  // Most URLs are already curl's normal form: then the second pass would
  // parse the same string with the same flags into the same state, and its
  // URL would be first_pass again, so keep this handle. Not with a '%'
  // anywhere, where reads re-encode (above).
  HttpUrl parsed;
  const bool fixed_point =
      first_pass == url && first_pass.find('%') == std::string::npos;
  if (!fixed_point) {
    handle.reset(curl_url());
    if (handle == nullptr) return absl::InternalError("curl_url failed");
    rc = curl_url_set(handle.get(), CURLUPART_URL, first_pass.c_str(),
                      CURLU_NON_SUPPORT_SCHEME);
    if (rc != CURLUE_OK) {
      return Invalid(absl::StrCat("malformed URL: ", curl_url_strerror(rc)));
    }
  }
  get(CURLUPART_SCHEME, 0, &parsed.scheme);
  parsed.scheme = absl::AsciiStrToLower(parsed.scheme);
  if (parsed.scheme != "http" && parsed.scheme != "https") {
    return absl::PermissionDeniedError(
        absl::StrCat("url: scheme \"", absl::CHexEscape(parsed.scheme),
                     "\" is not allowed (only http and https)"));
  }
  std::string ignored;
  if (get(CURLUPART_USER, 0, &ignored) == CURLUE_OK ||
      get(CURLUPART_PASSWORD, 0, &ignored) == CURLUE_OK) {
    return Invalid(
        "credentials in the URL (user:password@) are not allowed; send an "
        "Authorization header");
  }
  if (get(CURLUPART_HOST, 0, &parsed.host) != CURLUE_OK ||
      parsed.host.empty()) {
    return Invalid("no host");
  }
  parsed.host = absl::AsciiStrToLower(parsed.host);
  std::string port;
  uint32_t port_number = 0;
  if (get(CURLUPART_PORT, CURLU_DEFAULT_PORT, &port) != CURLUE_OK ||
      !absl::SimpleAtoi(port, &port_number) || port_number == 0 ||
      port_number > 65535) {
    return Invalid("no valid port");
  }
  parsed.port = static_cast<uint16_t>(port_number);
  if (fixed_point) {
    parsed.url = std::move(first_pass);
  } else if (get(CURLUPART_URL, 0, &parsed.url) != CURLUE_OK) {
    return Invalid("cannot be normalized");
  }
  parsed.host_key =
      absl::StrCat(parsed.scheme, "://", parsed.host, ":", parsed.port);
  return parsed;
}

absl::Status CheckProxyUrl(const std::string& url, absl::string_view field) {
  const auto invalid = [&](absl::string_view rule) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": proxy URL ", rule));
  };
  transport::CurlUrlPtr handle(curl_url());
  if (handle == nullptr) return absl::InternalError("curl_url failed");
  if (curl_url_set(handle.get(), CURLUPART_URL, url.c_str(),
                   CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK) {
    return invalid("is malformed");
  }
  const auto has = [&handle](CURLUPart part, std::string* out) {
    char* value = nullptr;
    if (curl_url_get(handle.get(), part, &value, 0) != CURLUE_OK) return false;
    if (out != nullptr) out->assign(value);
    curl_free(value);
    return true;
  };
  std::string scheme, path;
  has(CURLUPART_SCHEME, &scheme);
  scheme = absl::AsciiStrToLower(scheme);
  if (scheme != "http" && scheme != "https" && scheme != "socks5" &&
      scheme != "socks5h") {
    return invalid(absl::StrCat("scheme \"", absl::CHexEscape(scheme),
                                "\" is not http, https, socks5 or socks5h"));
  }
  if (!has(CURLUPART_HOST, nullptr)) return invalid("has no host");
  if (has(CURLUPART_USER, nullptr) || has(CURLUPART_PASSWORD, nullptr)) {
    return invalid("has credentials; use username and password");
  }
  if (has(CURLUPART_PATH, &path) && path != "/") {
    return invalid("has a path");
  }
  if (has(CURLUPART_QUERY, nullptr)) return invalid("has a query");
  return absl::OkStatus();
}

std::string PercentEncode(absl::string_view text) {
  std::unique_ptr<char, decltype(&curl_free)> escaped(
      curl_easy_escape(nullptr, text.data(), static_cast<int>(text.size())),
      &curl_free);
  return escaped != nullptr ? std::string(escaped.get()) : std::string();
}

absl::StatusOr<std::string> AppendQueryParams(
    const std::string& url, absl::Span<const QueryParam> params) {
  if (params.empty()) return url;
  transport::CurlUrlPtr handle(curl_url());
  if (handle == nullptr) return absl::ResourceExhaustedError("curl_url failed");
  if (const CURLUcode rc = curl_url_set(handle.get(), CURLUPART_URL,
                                        url.c_str(), CURLU_NON_SUPPORT_SCHEME);
      rc != CURLUE_OK) {
    return Invalid(absl::StrCat("cannot add the query parameters: ",
                                curl_url_strerror(rc)));
  }
  for (const QueryParam& param : params) {
    // Each name and value is encoded here rather than by CURLU_URLENCODE,
    // which keeps the first '=' of "name=value" as the separator and so
    // cannot carry a '=' in a name.
    const std::string pair = absl::StrCat(PercentEncode(param.name), "=",
                                          PercentEncode(param.value));
    if (const CURLUcode rc = curl_url_set(handle.get(), CURLUPART_QUERY,
                                          pair.c_str(), CURLU_APPENDQUERY);
        rc != CURLUE_OK) {
      return absl::InvalidArgumentError(
          absl::StrCat("query: cannot add parameter \"",
                       absl::CHexEscape(absl::string_view(param.name.data(),
                                                          param.name.size())),
                       "\": ", curl_url_strerror(rc)));
    }
  }
  char* out = nullptr;
  if (const CURLUcode rc = curl_url_get(handle.get(), CURLUPART_URL, &out, 0);
      rc != CURLUE_OK) {
    return Invalid(absl::StrCat("cannot add the query parameters: ",
                                curl_url_strerror(rc)));
  }
  std::string result(out);
  curl_free(out);
  return result;
}

}  // namespace fetchd::url
