// The server configuration (fetch.v1.ServerConfig): built-in defaults, a
// JSON file in the protobuf JSON mapping laid over them, and validation that
// names the field and the rule of the first problem found.
//
// Precedence (lowest first): DefaultServerConfig(), the --config file,
// FETCHD_* environment variables, flags (see config_overrides.h). In the
// file a zero or absent field keeps its default.
#ifndef FETCHD_SERVICE_CONFIG_SERVER_CONFIG_H_
#define FETCHD_SERVICE_CONFIG_SERVER_CONFIG_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fetch/v1/config.pb.h"

namespace fetchd::config {

// Every field set to its documented default; workers = hardware threads.
fetch::v1::ServerConfig DefaultServerConfig();

// Parses `json` and lays it over `base`. Unknown fields are errors.
[[nodiscard]] absl::StatusOr<fetch::v1::ServerConfig> MergeJsonConfig(
    const fetch::v1::ServerConfig& base, const std::string& json);

// Reads `path` and lays it over `base`; errors name the file.
[[nodiscard]] absl::StatusOr<fetch::v1::ServerConfig> LoadConfigFile(
    const fetch::v1::ServerConfig& base, const std::string& path);

// Replaces "automatic" values by concrete ones: workers 0 becomes the number
// of hardware threads (at most 256).
void ResolveAutoValues(fetch::v1::ServerConfig* config);

// Checks limits and bounds, and `auth` without reading the files it names
// (auth::CallerAuth::CheckConfig(); the server reads them when it starts);
// InvalidArgument "field: rule" otherwise. The request defaults are checked
// against the bounds by api::RequestValidator.
[[nodiscard]] absl::Status ValidateServerConfig(
    const fetch::v1::ServerConfig& config);

// The config as indented JSON (protobuf JSON mapping).
std::string ConfigToJson(const fetch::v1::ServerConfig& config);

}  // namespace fetchd::config

#endif  // FETCHD_SERVICE_CONFIG_SERVER_CONFIG_H_
