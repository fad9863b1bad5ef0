// fetchctl's flags, declared once: each flag's names, value name, help
// group and help text, registered on a CLI11 parser (CLI11 tokenizes the
// command line: curl-style short flags that combine (-qL, -XPOST),
// --name=value, repeated flags, "--") and rendered as the --help text.
// What a flag does is fetchctl_options.cc's business.
//
// Internal to fetchctl_lib. Pure; thread-safe.
#ifndef FETCHD_CLIENT_FETCHCTL_FLAGS_H_
#define FETCHD_CLIENT_FETCHCTL_FLAGS_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"

namespace CLI {
class App;
}  // namespace CLI

namespace fetchd::client {

enum class Flag {
  // Server
  kServer,
  kTls,
  kServerCacert,
  kServerCert,
  kServerKey,
  kTlsServerName,
  kTokenFile,
  // Request options
  kRequest,
  kHeader,
  kData,
  kJson,
  kForm,
  kDataUrlencode,
  kUrlQuery,
  kUser,
  kOauth2Bearer,
  kCacert,
  kCert,
  kKey,
  kInsecure,
  kProxy,
  kProxyUser,
  kHttp11,
  kHttp2,
  kResolve,
  kCookie,
  kNoCookies,
  kTimeout,
  kConnectTimeout,
  kReadTimeout,
  kRetries,
  kLocation,
  kNoLocation,
  kMaxRedirs,
  kMaxFilesize,
  kFail,
  // Batch options
  kFile,
  kMaxConcurrency,
  kOrdered,
  kFailFast,
  kDeadline,
  // Output
  kBody,
  kOutput,
  kRaw,
  kChunkBytes,
  kQuiet,
  kVerbose,
  kProgress,
  kNoProgress,
  kHelp,
  kVersion,
};

// How messages name a flag: "-H/--header", "--timeout".
std::string FlagName(Flag flag);

// The flag whose long name is `name` ("--header" or "header").
std::optional<Flag> FlagByLongName(absl::string_view name);

// Called once per occurrence of a flag, in command line order, with its
// value ("" for a flag that takes none).
using FlagHandler = std::function<void(Flag flag, const std::string& value)>;

// Registers every flag on `app`, each calling `handler` as it is parsed,
// and `positional` as the receiver of the other arguments. Also sets the
// help layout (see FetchctlUsage()). `app` keeps `handler` and
// `positional`: both must outlive its parse.
void AddFetchctlFlags(CLI::App& app, FlagHandler handler,
                      std::vector<std::string>& positional);

}  // namespace fetchd::client

#endif  // FETCHD_CLIENT_FETCHCTL_FLAGS_H_
