#include "client/fetchctl_messages.h"

#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "client/byte_progress.h"

namespace fetchd::client {
namespace {

// The cap as fetchd's transport words it: "... max_body_bytes (N)".
bool CapFromMessage(absl::string_view message, uint64_t& cap) {
  constexpr absl::string_view kMarker = "max_body_bytes (";
  const size_t at = message.find(kMarker);
  if (at == absl::string_view::npos) return false;
  const absl::string_view rest = message.substr(at + kMarker.size());
  return absl::SimpleAtoi(rest.substr(0, rest.find(')')), &cap);
}

std::string DescribeCap(uint64_t cap) {
  return absl::StrCat(FormatBytes(cap), " (", cap, " bytes)");
}

}  // namespace

int UsageError(absl::string_view message) {
  std::fprintf(stderr,
               "fetchctl: %s\nTry 'fetchctl --help' for more information.\n",
               std::string(message).c_str());
  return kExitUsage;
}

int RpcError(const absl::Status& status) {
  std::fprintf(stderr, "fetchctl: %s: %s\n",
               absl::StatusCodeToString(status.code()).c_str(),
               std::string(status.message()).c_str());
  return kExitRpcError;
}

std::string BodyTooLargeHint(const fetch::v1::FetchResult& result,
                             const FetchctlOptions& options) {
  const fetch::v1::FetchRequest& defaults = options.batch_template.defaults();
  uint64_t cap = 0;
  std::string which;
  if (CapFromMessage(result.error_message(), cap)) {
    which = absl::StrCat("the cap of ", DescribeCap(cap));
  } else if (defaults.has_max_body_bytes()) {
    which = absl::StrCat("the cap of ", DescribeCap(defaults.max_body_bytes()),
                         " set by --max-filesize");
  } else {
    which =
        "fetchd's cap (2 MiB unless its config sets "
        "request_defaults.max_body_bytes)";
  }
  std::string hint = absl::StrCat("fetchctl: the body of result ",
                                  result.index(), " is larger than ", which,
                                  ": raise it with --max-filesize BYTES (up "
                                  "to fetchd's request_bounds.max_body_bytes)");
  if (options.output_path.empty()) {
    absl::StrAppend(&hint,
                    ", or stream the body into a file with 'fetchctl get "
                    "URL -o FILE' (no such cap: only fetchd's\n"
                    "request_bounds.max_stream_body_bytes applies)");
  }
  hint.push_back('\n');
  return hint;
}

}  // namespace fetchd::client
