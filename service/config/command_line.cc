#include "service/config/command_line.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/flag.h"
#include "absl/flags/reflection.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "service/config/server_config.h"

ABSL_FLAG(std::string, config, "",
          "JSON file with a fetch.v1.ServerConfig (protobuf JSON mapping)");
ABSL_FLAG(std::string, listen, "",
          "gRPC listen address host:port (overrides the config; port 0 picks "
          "a free port)");
ABSL_FLAG(int, workers, -1, "curl worker threads (overrides the config)");
ABSL_FLAG(int, max_in_flight, -1, "limits.max_in_flight override");
ABSL_FLAG(int, max_per_host, -1, "limits.max_per_host override");
ABSL_FLAG(int, max_batch_size, -1, "limits.max_batch_size override");
ABSL_FLAG(int, max_pending, -1, "limits.max_pending override");
ABSL_FLAG(int, stream_window, -1, "limits.stream_window override");
ABSL_FLAG(absl::Duration, default_timeout, absl::ZeroDuration(),
          "request_defaults.timeouts.total override (e.g. 15s)");
ABSL_FLAG(absl::Duration, default_connect_timeout, absl::ZeroDuration(),
          "request_defaults.timeouts.connect override");
ABSL_FLAG(int, default_max_attempts, -1,
          "request_defaults.retry.max_attempts override (1 = no retries)");
ABSL_FLAG(int, max_attempts, -1,
          "request_bounds.max_attempts override (the most a caller may ask)");
ABSL_FLAG(std::string, port_file, "",
          "after start, write the bound gRPC port to this file");
ABSL_FLAG(std::string, metrics_listen, "",
          "metrics.listen override: where /metrics is served, host:port "
          "(port 0 picks a free port)");
ABSL_FLAG(std::string, metrics_port_file, "",
          "after start, write the bound metrics port to this file");
ABSL_FLAG(std::string, policy_allow, "",
          "comma-separated CIDRs fetchd may connect to even inside the "
          "ranges its destination policy denies (replaces policy.allow)");
ABSL_FLAG(std::string, tls_cert_file, "",
          "auth.tls_cert_file override: PEM certificate chain; with "
          "--tls_key_file the gRPC endpoint serves TLS only");
ABSL_FLAG(std::string, tls_key_file, "",
          "auth.tls_key_file override: PEM private key of --tls_cert_file");
ABSL_FLAG(std::string, client_ca_file, "",
          "auth.client_ca_file override: PEM CA that client certificates "
          "must chain to");
ABSL_FLAG(bool, require_client_cert, false,
          "auth.require_client_cert override: mTLS, refuse clients without "
          "a certificate from --client_ca_file");
ABSL_FLAG(std::string, token_file, "",
          "auth.token_file override: \"NAME TOKEN\" lines; calls must then "
          "send \"authorization: Bearer TOKEN\"");
ABSL_FLAG(bool, print_config, false, "print the effective config and exit");
ABSL_FLAG(bool, check_config, false, "validate the config and exit");
ABSL_FLAG(int, drain_seconds, 10,
          "on SIGTERM, how long running calls may take before they are "
          "cancelled");
ABSL_FLAG(std::string, log_level, "",
          "log_level override: trace|debug|info|warn|error|critical|off");

namespace fetchd::config {
namespace {

// The flags that override the config and were given: --config and those
// of ConfigOverrides(), each of which must be defined above. A flag
// still at its default (-1, 0s or "": "not given") overrides nothing.
absl::StatusOr<ValueMap> GivenConfigFlags() {
  std::vector<absl::string_view> names = {kConfigFileFlag};
  for (const ConfigOverride& entry : ConfigOverrides()) {
    names.push_back(entry.name);
  }
  ValueMap given;
  for (absl::string_view name : names) {
    const absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr) {
      return absl::InternalError(absl::StrCat("no flag --", name));
    }
    if (std::string value = flag->CurrentValue();
        value != flag->DefaultValue()) {
      given.emplace(std::string(name), std::move(value));
    }
  }
  return given;
}

}  // namespace

absl::StatusOr<fetch::v1::ServerConfig> ConfigFromCommandLine(
    const ValueMap& env) {
  absl::StatusOr<ValueMap> flags = GivenConfigFlags();
  if (!flags.ok()) return flags.status();
  return BuildServerConfig({env, *std::move(flags)});
}

}  // namespace fetchd::config
