#include "service/config/command_line.h"

#include <algorithm>
#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/flags/commandlineflag.h"
#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "fetchd/version.h"
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

absl::Status WithCommandLineSource(const absl::Status& status,
                                   const ValueMap& env) {
  absl::StatusOr<ValueMap> flags = GivenConfigFlags();
  if (!flags.ok()) return status;
  return WithProvenance(status, {env, *std::move(flags)});
}

namespace {

constexpr absl::string_view kUsage =
    "fetchd: the HTTP fetch service (gRPC). Callers send batches of HTTP "
    "requests;\nfetchd runs them through one curl-multi worker pool and "
    "streams each result back.\n\n"
    "Usage: fetchd [--config FILE] [--listen HOST:PORT] [FLAGS...]\n\n"
    "Config, lowest precedence first: built-in defaults, the --config JSON "
    "file\n(FETCHD_CONFIG), FETCHD_* environment variables, flags. Loopback "
    "and private\naddresses are denied by default: --policy_allow=CIDR (e.g. "
    "127.0.0.0/8) lets\nfetchd reach them (docs/security.md).\n";

std::string VersionText() {
  return absl::StrCat("fetchd ", kFetchdVersion, " (", kFetchdBuild, ")\n");
}

// Whether `arg` is `name` as a flag: -name, --name or --name=...
bool IsFlag(absl::string_view arg, absl::string_view name) {
  if (absl::StartsWith(arg, "--")) {
    arg.remove_prefix(2);
  } else if (absl::StartsWith(arg, "-")) {
    arg.remove_prefix(1);
  } else {
    return false;
  }
  return arg == name || absl::StartsWith(arg, absl::StrCat(name, "="));
}

}  // namespace

std::string FetchdHelp() {
  std::string out(kUsage);
  out += "\nFlags (each --NAME of a config field also reads FETCHD_NAME):\n";
  std::vector<const absl::CommandLineFlag*> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (absl::EndsWith(flag->Filename(), "command_line.cc")) {
      flags.push_back(flag);
    }
  }
  std::sort(flags.begin(), flags.end(),
            [](const auto* a, const auto* b) { return a->Name() < b->Name(); });
  const auto is_override = [](absl::string_view name) {
    if (name == kConfigFileFlag) return true;
    for (const ConfigOverride& entry : ConfigOverrides()) {
      if (entry.name == name) return true;
    }
    return false;
  };
  for (const absl::CommandLineFlag* flag : flags) {
    absl::StrAppend(&out, "  --", flag->Name());
    if (is_override(flag->Name())) {
      absl::StrAppend(&out, " (", EnvVarName(flag->Name()), ")");
    }
    absl::StrAppend(&out, "\n      ", flag->Help(), "\n");
    if (const std::string value = flag->DefaultValue();
        !value.empty() && value != "-1" && value != "0") {
      absl::StrAppend(&out, "      default: ", value, "\n");
    }
  }
  absl::StrAppend(&out,
                  "  --help, -h\n      this text\n  --version\n      the "
                  "version and build\n\nExit codes: 0 after a drain (SIGTERM, "
                  "SIGINT); 1 when fetchd can't start (an\naddress in use, a "
                  "file it can't read); 2 for an invalid config or command "
                  "line.\n");
  return out;
}

CommandLine ParseFetchdCommandLine(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  absl::FlagsUsageConfig usage;
  usage.version_string = VersionText;
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "command_line.cc");
  };
  absl::SetFlagsUsageConfig(usage);
  for (int i = 1; i < argc; ++i) {
    const absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (IsFlag(arg, "help") || arg == "-h") {
      std::cout << FetchdHelp();
      return {0};
    }
    if (IsFlag(arg, "version")) {
      std::cout << VersionText();
      return {0};
    }
  }
  // Unknown flags and bad values are usage errors (abseil would exit 1).
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg.size() < 2 || arg[0] != '-') continue;
    arg.remove_prefix(arg[1] == '-' ? 2 : 1);
    const size_t eq = arg.find('=');
    const absl::string_view name = arg.substr(0, eq);
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    if (flag == nullptr && absl::StartsWith(name, "no")) {
      absl::CommandLineFlag* negated =
          absl::FindCommandLineFlag(name.substr(2));
      if (negated != nullptr && negated->IsOfType<bool>() &&
          eq == absl::string_view::npos) {
        continue;
      }
    }
    if (flag == nullptr) {
      std::cerr << "fetchd: unknown flag --" << name
                << " (see fetchd --help)\n";
      return {2};
    }
    absl::string_view value;
    if (eq != absl::string_view::npos) {
      value = arg.substr(eq + 1);
    } else if (flag->IsOfType<bool>()) {
      continue;
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      std::cerr << "fetchd: --" << name << " needs a value\n";
      return {2};
    }
    if (std::string error; !flag->ParseFrom(value, &error)) {
      std::cerr << "fetchd: --" << name << "=" << value << ": " << error
                << "\n";
      return {2};
    }
  }
  const std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() > 1) {
    std::cerr << "fetchd: unexpected argument \"" << positional[1]
              << "\": fetchd takes only flags (see fetchd --help)\n";
    return {2};
  }
  return {};
}

}  // namespace fetchd::config
