// Where fetchd's effective config comes from, lowest precedence first:
//
//   1. DefaultServerConfig()
//   2. the JSON file named by --config, else by $FETCHD_CONFIG
//   3. FETCHD_<NAME> environment variables, e.g. FETCHD_MAX_PER_HOST=8
//   4. flags, e.g. --max_per_host=8
//
// Each override of one field is an entry of ConfigOverrides(): a name (the
// flag's, lower case; the variable is FETCHD_ + the name in upper case) and
// the field's path in fetch.v1.ServerConfig. The value is parsed by the
// field's type: a string as is (not empty), an integer in decimal, a bool
// as true/false/1/0 (also yes/no, t/f, y/n; any case), a
// google.protobuf.Duration as an absl duration ("15s", "1.5s", "250ms")
// that must be positive. An empty variable counts as unset.
//
// Pure: the environment and the flags are passed in as maps, so every
// function here is deterministic apart from reading the config file.
// Thread-compatible.
#ifndef FETCHD_SERVICE_CONFIG_CONFIG_OVERRIDES_H_
#define FETCHD_SERVICE_CONFIG_CONFIG_OVERRIDES_H_

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "fetch/v1/config.pb.h"

namespace fetchd::config {

// Variable name (or flag name) to value.
using ValueMap = std::map<std::string, std::string, std::less<>>;

// One field that a flag and an environment variable override.
struct ConfigOverride {
  // The flag's name without "--", e.g. "max_per_host".
  absl::string_view name;
  // The field's path in ServerConfig, e.g. "limits.max_per_host".
  absl::string_view field;
};

// Every override, in the order flags are documented. Each field path names
// a string, uint32, bool or Duration field reached through singular messages.
absl::Span<const ConfigOverride> ConfigOverrides();

// The flag naming the config file, and its variable.
inline constexpr absl::string_view kConfigFileFlag = "config";
inline constexpr absl::string_view kConfigFileEnvVar = "FETCHD_CONFIG";

// "FETCHD_MAX_PER_HOST" for "max_per_host".
std::string EnvVarName(absl::string_view name);

// The inputs of BuildServerConfig().
struct ConfigSources {
  // The process environment (see EnvironmentMap()); only the FETCHD_*
  // variables named above are read.
  ValueMap env;
  // Flags given on the command line, by name without "--": "config" and the
  // names of ConfigOverrides(). Absent means not given.
  ValueMap flags;
};

// Sets the field of every override whose FETCHD_* variable is set (and not
// empty) in `env`. Errors: InvalidArgument naming the variable, its value
// and what was expected, e.g.
//   FETCHD_WORKERS: "four" is not an integer between 0 and 4294967295
[[nodiscard]] absl::Status ApplyEnvOverrides(const ValueMap& env,
                                             fetch::v1::ServerConfig* config);

// Sets the field of every override named in `flags`. Errors as for
// ApplyEnvOverrides(), naming the flag ("--workers: ..."); also for a name
// that is not an override.
[[nodiscard]] absl::Status ApplyFlagOverrides(const ValueMap& flags,
                                              fetch::v1::ServerConfig* config);

// The effective config: defaults, file, environment, flags (see the file
// comment), then ResolveAutoValues() and ValidateServerConfig(). A
// validation error about a field that the environment or a flag set says
// so, e.g.
//   limits.max_per_host: must be between 1 and 100000, got 0 (from
//   FETCHD_MAX_PER_HOST=0)
// Errors: those of LoadConfigFile(), the Apply*() functions and
// ValidateServerConfig().
[[nodiscard]] absl::StatusOr<fetch::v1::ServerConfig> BuildServerConfig(
    const ConfigSources& sources);

// `status` (an error naming a config field first, "field: rule"), saying
// which variable or flag set that field, if one did; OK stays OK.
[[nodiscard]] absl::Status WithProvenance(const absl::Status& status,
                                          const ConfigSources& sources);

// The FETCHD_* variables of `env` that fetchd does not read, sorted, so that
// a misspelt name can be reported. FETCHD_SERVER (fetchctl's) is not listed.
std::vector<std::string> UnknownFetchdVariables(const ValueMap& env);

// A NULL-terminated "NAME=value" array (like `environ`) as a map; entries
// without '=' are skipped, and the first of repeated names wins (as getenv).
ValueMap EnvironmentMap(const char* const* environment);

}  // namespace fetchd::config

#endif  // FETCHD_SERVICE_CONFIG_CONFIG_OVERRIDES_H_
