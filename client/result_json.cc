#include "client/result_json.h"

#include <cstdint>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/util/json_util.h"

namespace fetchd::client {
namespace {

// A stand-in for 0 that the printer keeps. A top-level "index", "status" or
// "attempts" is printed before any nested message that could hold a field
// of the same name (field numbers 2, 4, 9; headers hold only names and
// values, redirect_history comes later), and a quote inside a string is
// escaped, so the first `"name":4294967295` is the field itself.
constexpr uint32_t kZero = std::numeric_limits<uint32_t>::max();

void RestoreZero(absl::string_view name, std::string& json) {
  const std::string stand_in = absl::StrCat("\"", name, "\":", kZero);
  const size_t at = json.find(stand_in);
  if (at != std::string::npos) {
    json.replace(at, stand_in.size(), absl::StrCat("\"", name, "\":0"));
  }
}

}  // namespace

absl::StatusOr<std::string> ResultJson(const fetch::v1::FetchResult& result,
                                       bool include_body) {
  fetch::v1::FetchResult printed = result;
  if (!include_body) printed.clear_body();
  const bool zero_index = printed.index() == 0;
  const bool zero_status = printed.status() == 0;
  const bool zero_attempts = printed.attempts() == 0;
  if (zero_index) printed.set_index(kZero);
  if (zero_status) printed.set_status(kZero);
  if (zero_attempts) printed.set_attempts(kZero);
  std::string json;
  const google::protobuf::util::Status status =
      google::protobuf::util::MessageToJsonString(printed, &json);
  if (!status.ok()) {
    return absl::InternalError(absl::StrCat(
        "cannot print result ", result.index(), " as JSON: ",
        absl::string_view(status.message().data(), status.message().size())));
  }
  if (zero_index) RestoreZero("index", json);
  if (zero_status) RestoreZero("status", json);
  if (zero_attempts) RestoreZero("attempts", json);
  return json;
}

}  // namespace fetchd::client
