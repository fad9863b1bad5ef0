// fetchd's command line: the flags of the fetchd binary (absl flags), and
// the config they build with the environment. Flags named like the
// overrides of config_overrides.h override the config; the others
// (--port_file, --print_config, ...) are read by main.cc.
#ifndef FETCHD_SERVICE_CONFIG_COMMAND_LINE_H_
#define FETCHD_SERVICE_CONFIG_COMMAND_LINE_H_

#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/status/statusor.h"
#include "fetch/v1/config.pb.h"
#include "service/config/config_overrides.h"

ABSL_DECLARE_FLAG(std::string, port_file);
ABSL_DECLARE_FLAG(std::string, metrics_port_file);
ABSL_DECLARE_FLAG(bool, print_config);
ABSL_DECLARE_FLAG(bool, check_config);
ABSL_DECLARE_FLAG(int, drain_seconds);

namespace fetchd::config {

// What fetchd should do after ParseFetchdCommandLine().
struct CommandLine {
  // Exit at once with this code (after --help, --version or a usage
  // error, already printed); -1: run.
  int exit_code = -1;
};

// Parses argv into the flags. `--help` (or -h) prints the usage, every flag
// with its default and its FETCHD_* variable, and exits 0; `--version`
// prints the version and build and exits 0; an unknown flag or a stray
// argument ("fetchd extra") is a usage error (exit 2) naming it.
CommandLine ParseFetchdCommandLine(int argc, char** argv);

// The --help text (for tests and docs): usage, then each flag of fetchd.
std::string FetchdHelp();

// Defaults, the --config file, the FETCHD_* variables of `env`, the flags
// that were given (after absl::ParseCommandLine()). Errors: InvalidArgument
// naming the source, the field and the rule.
absl::StatusOr<fetch::v1::ServerConfig> ConfigFromCommandLine(
    const ValueMap& env);

// A start-up error about the config ConfigFromCommandLine() made (e.g. an
// auth file that can't be read) with the flag or variable that set the
// field, as ConfigFromCommandLine()'s own errors have.
[[nodiscard]] absl::Status WithCommandLineSource(const absl::Status& status,
                                                 const ValueMap& env);

}  // namespace fetchd::config

#endif  // FETCHD_SERVICE_CONFIG_COMMAND_LINE_H_
