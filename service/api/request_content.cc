#include "service/api/request_content.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "service/common/status_macros.h"
#include "service/url/http_url.h"

namespace fetchd::api {
namespace {

using fetch::v1::FetchRequest;

absl::Status Invalid(const std::string& field, absl::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", rule));
}

bool HasCrLfNul(absl::string_view s) {
  return s.find_first_of(absl::string_view("\r\n\0", 3)) !=
         absl::string_view::npos;
}

// The name of the body kind `request` sets besides `body`, or "".
std::string BodyKindName(const FetchRequest& request) {
  switch (request.body_kind_case()) {
    case FetchRequest::kJson:
      return "json";
    case FetchRequest::kForm:
      return "form";
    case FetchRequest::kMultipart:
      return "multipart";
    case FetchRequest::BODY_KIND_NOT_SET:
      break;
  }
  return "";
}

bool HasBody(const FetchRequest& request) {
  return !request.body().empty() ||
         request.body_kind_case() != FetchRequest::BODY_KIND_NOT_SET;
}

// RFC 7235 token68, the syntax of a Bearer token (RFC 6750).
bool IsToken68(absl::string_view token) {
  size_t i = 0;
  while (
      i < token.size() &&
      (absl::ascii_isalnum(static_cast<unsigned char>(token[i])) ||
       absl::string_view("-._~+/").find(token[i]) != absl::string_view::npos)) {
    ++i;
  }
  if (i == 0) return false;
  while (i < token.size() && token[i] == '=') ++i;
  return i == token.size();
}

// "type/subtype" with optional parameters, no control characters.
bool IsMediaType(absl::string_view type) {
  if (HasCrLfNul(type)) return false;
  const absl::string_view essence = type.substr(0, type.find(';'));
  const size_t slash = essence.find('/');
  return slash != absl::string_view::npos && slash > 0 &&
         slash + 1 < absl::StripTrailingAsciiWhitespace(essence).size();
}

uint64_t MultipartBytes(const fetch::v1::MultipartBody& multipart) {
  uint64_t bytes = 0;
  for (const fetch::v1::MultipartPart& part : multipart.parts()) {
    bytes += part.name().size() + part.data().size() + part.filename().size() +
             part.content_type().size();
  }
  return bytes;
}

absl::Status CheckSize(uint64_t bytes, const fetch::v1::RequestBounds& bounds,
                       const std::string& field) {
  if (bytes > bounds.max_request_body_bytes()) {
    return Invalid(field, absl::StrCat(bytes, " bytes exceed the limit of ",
                                       bounds.max_request_body_bytes(),
                                       " (request_bounds.max_request_body_"
                                       "bytes)"));
  }
  return absl::OkStatus();
}

absl::Status CheckJson(const std::string& json,
                       const fetch::v1::RequestBounds& bounds,
                       const std::string& field) {
  if (json.empty()) return Invalid(field, "is empty (not a JSON text)");
  FETCHD_RETURN_IF_ERROR(CheckSize(json.size(), bounds, field));
  // google.protobuf.Value holds any JSON value: parsing into it is a JSON
  // syntax check by a well-kept parser.
  google::protobuf::Value value;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &value);
  if (!status.ok()) {
    return Invalid(field,
                   absl::StrCat("not valid JSON: ",
                                absl::string_view(status.message().data(),
                                                  status.message().size())));
  }
  return absl::OkStatus();
}

absl::Status CheckMultipart(const fetch::v1::MultipartBody& multipart,
                            const fetch::v1::RequestBounds& bounds,
                            const std::string& field) {
  if (multipart.parts().empty()) {
    return Invalid(field + ".parts", "is empty (at least one part)");
  }
  for (int i = 0; i < multipart.parts_size(); ++i) {
    const fetch::v1::MultipartPart& part = multipart.parts(i);
    const std::string prefix = absl::StrCat(field, ".parts[", i, "].");
    if (part.name().empty()) return Invalid(prefix + "name", "is empty");
    if (HasCrLfNul(part.name())) {
      return Invalid(prefix + "name", "contains CR, LF or NUL");
    }
    if (HasCrLfNul(part.filename())) {
      return Invalid(prefix + "filename", "contains CR, LF or NUL");
    }
    if (!part.content_type().empty() && !IsMediaType(part.content_type())) {
      return Invalid(prefix + "content_type",
                     absl::StrCat("\"", absl::CHexEscape(part.content_type()),
                                  "\" is not a media type (type/subtype)"));
    }
  }
  return CheckSize(MultipartBytes(multipart), bounds, field);
}

// The index of the first header of `request` named `name` (lower case), or
// -1.
int FindHeader(const FetchRequest& request, absl::string_view name) {
  for (int i = 0; i < request.headers_size(); ++i) {
    if (absl::EqualsIgnoreCase(request.headers(i).name(), name)) return i;
  }
  return -1;
}

}  // namespace

absl::Status CheckRequestContent(const FetchRequest& request,
                                 const fetch::v1::RequestBounds& bounds,
                                 const std::string& prefix) {
  for (int i = 0; i < request.query_size(); ++i) {
    if (request.query(i).name().empty()) {
      return Invalid(absl::StrCat(prefix, "query[", i, "].name"), "is empty");
    }
  }
  const std::string kind = BodyKindName(request);
  if (!request.body().empty() && !kind.empty()) {
    return Invalid(prefix + kind,
                   absl::StrCat("set together with ", prefix,
                                "body; a request has one body kind (body, "
                                "json, form or multipart)"));
  }
  switch (request.body_kind_case()) {
    case FetchRequest::kJson:
      FETCHD_RETURN_IF_ERROR(
          CheckJson(request.json(), bounds, prefix + "json"));
      break;
    case FetchRequest::kForm: {
      uint64_t bytes = 0;
      for (int i = 0; i < request.form().fields_size(); ++i) {
        const fetch::v1::FormField& f = request.form().fields(i);
        if (f.name().empty()) {
          return Invalid(absl::StrCat(prefix, "form.fields[", i, "].name"),
                         "is empty");
        }
        bytes += f.name().size() + f.value().size() + 2;
      }
      // The raw size; the encoded size is checked once encoded.
      FETCHD_RETURN_IF_ERROR(CheckSize(bytes, bounds, prefix + "form"));
      break;
    }
    case FetchRequest::kMultipart:
      if (absl::Status s =
              CheckMultipart(request.multipart(), bounds, prefix + "multipart");
          !s.ok()) {
        return s;
      }
      break;
    case FetchRequest::BODY_KIND_NOT_SET:
      break;
  }
  switch (request.credentials_case()) {
    case FetchRequest::kBasicAuth:
      if (request.basic_auth().username().find(':') != std::string::npos) {
        return Invalid(prefix + "basic_auth.username",
                       "contains ':' (RFC 7617 does not allow it)");
      }
      break;
    case FetchRequest::kBearerToken:
      if (!IsToken68(request.bearer_token())) {
        return Invalid(prefix + "bearer_token",
                       request.bearer_token().empty()
                           ? "is empty"
                           : "is not a token68 (RFC 6750: letters, digits, "
                             "- . _ ~ + / and trailing '=')");
      }
      break;
    case FetchRequest::CREDENTIALS_NOT_SET:
      break;
  }
  return absl::OkStatus();
}

void ClearReplacedContent(const FetchRequest& src, FetchRequest* dst) {
  if (HasBody(src)) {
    dst->clear_body();
    dst->clear_body_kind();
  }
  if (src.credentials_case() != FetchRequest::CREDENTIALS_NOT_SET) {
    dst->clear_credentials();
  }
}

absl::Status ApplyRequestContent(FetchRequest& effective,
                                 const fetch::v1::RequestBounds& bounds,
                                 core::FetchJob* job) {
  const std::string kind =
      !effective.body().empty() ? "body" : BodyKindName(effective);
  if (!kind.empty() && job->method == "HEAD") {
    return Invalid(kind, "a HEAD request has no body");
  }
  const bool has_content_type = FindHeader(effective, "content-type") >= 0;
  switch (effective.body_kind_case()) {
    case FetchRequest::kJson:
      job->body = std::move(*effective.mutable_json());
      if (!has_content_type) {
        job->header_lines.push_back("Content-Type: application/json");
      }
      break;
    case FetchRequest::kForm: {
      std::string encoded;
      for (const fetch::v1::FormField& f : effective.form().fields()) {
        absl::StrAppend(&encoded, encoded.empty() ? "" : "&",
                        url::PercentEncode(f.name()), "=",
                        url::PercentEncode(f.value()));
      }
      FETCHD_RETURN_IF_ERROR(
          CheckSize(encoded.size(), bounds, "form (encoded)"));
      job->body = std::move(encoded);
      if (!has_content_type) {
        job->header_lines.push_back(
            "Content-Type: application/x-www-form-urlencoded");
      }
      break;
    }
    case FetchRequest::kMultipart:
      if (has_content_type) {
        return Invalid("multipart",
                       "fetchd sets the Content-Type of a multipart body "
                       "(with its boundary); remove the Content-Type header");
      }
      FETCHD_RETURN_IF_ERROR(CheckSize(MultipartBytes(effective.multipart()),
                                       bounds, "multipart"));
      for (fetch::v1::MultipartPart& part :
           *effective.mutable_multipart()->mutable_parts()) {
        job->multipart.push_back(core::MultipartPart{
            std::move(*part.mutable_name()), std::move(*part.mutable_data()),
            std::move(*part.mutable_filename()),
            std::move(*part.mutable_content_type())});
      }
      break;
    case FetchRequest::BODY_KIND_NOT_SET:
      job->body = std::move(*effective.mutable_body());
      break;
  }

  if (effective.credentials_case() == FetchRequest::CREDENTIALS_NOT_SET) {
    return absl::OkStatus();
  }
  const bool basic = effective.credentials_case() == FetchRequest::kBasicAuth;
  const std::string field = basic ? "basic_auth" : "bearer_token";
  if (FindHeader(effective, "authorization") >= 0) {
    return Invalid(field,
                   "set together with an \"Authorization\" header; use one "
                   "of them");
  }
  if (basic) {
    job->header_lines.push_back(absl::StrCat(
        "Authorization: Basic ",
        absl::Base64Escape(absl::StrCat(effective.basic_auth().username(), ":",
                                        effective.basic_auth().password()))));
  } else {
    job->header_lines.push_back(
        absl::StrCat("Authorization: Bearer ", effective.bearer_token()));
  }
  return absl::OkStatus();
}

}  // namespace fetchd::api
