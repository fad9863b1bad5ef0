#include "service/config/config_overrides.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/duration.pb.h"
#include "google/protobuf/message.h"
#include "service/common/proto_duration.h"
#include "service/common/status_macros.h"
#include "service/config/server_config.h"

namespace fetchd::config {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

constexpr ConfigOverride kOverrides[] = {
    {"listen", "listen"},
    {"workers", "workers"},
    {"max_in_flight", "limits.max_in_flight"},
    {"max_per_host", "limits.max_per_host"},
    {"max_batch_size", "limits.max_batch_size"},
    {"max_pending", "limits.max_pending"},
    {"stream_window", "limits.stream_window"},
    {"default_timeout", "request_defaults.timeouts.total"},
    {"default_connect_timeout", "request_defaults.timeouts.connect"},
    {"default_max_attempts", "request_defaults.retry.max_attempts"},
    {"max_attempts", "request_bounds.max_attempts"},
    {"log_level", "log_level"},
    {"metrics_listen", "metrics.listen"},
    // Comma-separated CIDRs, any port: replaces policy.allow.
    {"policy_allow", "policy.allow"},
    {"tls_cert_file", "auth.tls_cert_file"},
    {"tls_key_file", "auth.tls_key_file"},
    {"client_ca_file", "auth.client_ca_file"},
    {"require_client_cert", "auth.require_client_cert"},
    {"token_file", "auth.token_file"},
};

// Variables with the FETCHD_ prefix that belong to someone else.
constexpr absl::string_view kOtherFetchdVariables[] = {"FETCHD_SERVER",
                                                       "FETCHD_TOKEN"};

std::string Quoted(absl::string_view value) {
  return absl::StrCat("\"", absl::CEscape(value), "\"");
}

// Parses `value` by the type of `field` (a field of `message`) and sets it.
// Errors: InvalidArgument saying what was expected, without naming the
// source.
absl::Status SetScalar(const FieldDescriptor& field, absl::string_view value,
                       Message* message) {
  const google::protobuf::Reflection& reflection = *message->GetReflection();
  switch (field.cpp_type()) {
    case FieldDescriptor::CPPTYPE_STRING:
      reflection.SetString(message, &field, std::string(value));
      return absl::OkStatus();
    case FieldDescriptor::CPPTYPE_UINT32: {
      uint32_t parsed = 0;
      if (!absl::SimpleAtoi(value, &parsed)) {
        return absl::InvalidArgumentError(
            absl::StrCat(Quoted(value), " is not an integer between 0 and ",
                         std::numeric_limits<uint32_t>::max()));
      }
      reflection.SetUInt32(message, &field, parsed);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_BOOL: {
      bool parsed = false;
      if (!absl::SimpleAtob(value, &parsed)) {
        return absl::InvalidArgumentError(absl::StrCat(
            Quoted(value), " is not a boolean (true, false, 1 or 0)"));
      }
      reflection.SetBool(message, &field, parsed);
      return absl::OkStatus();
    }
    case FieldDescriptor::CPPTYPE_MESSAGE:
      if (field.message_type() == google::protobuf::Duration::descriptor()) {
        absl::Duration parsed;
        if (!absl::ParseDuration(value, &parsed) ||
            parsed <= absl::ZeroDuration() ||
            parsed == absl::InfiniteDuration() ||
            !IsValidProtoDuration(ToProto(parsed))) {
          return absl::InvalidArgumentError(
              absl::StrCat(Quoted(value),
                           " is not a positive duration such as 15s, 1.5s "
                           "or 250ms"));
        }
        reflection.MutableMessage(message, &field)->CopyFrom(ToProto(parsed));
        return absl::OkStatus();
      }
      break;
    default:
      break;
  }
  return absl::InternalError(
      absl::StrCat("field ", field.full_name(), " cannot be overridden"));
}

// Replaces the AddressRule list `field` of `message` with one rule (any
// port) per comma-separated CIDR of `value`; Validate() checks the CIDRs.
absl::Status SetAddressRules(const FieldDescriptor& field,
                             absl::string_view value, Message* message) {
  const google::protobuf::Reflection& reflection = *message->GetReflection();
  reflection.ClearField(message, &field);
  for (absl::string_view cidr :
       absl::StrSplit(value, ',', absl::SkipWhitespace())) {
    auto* rule = static_cast<fetch::v1::AddressRule*>(
        reflection.AddMessage(message, &field));
    rule->set_cidr(std::string(absl::StripAsciiWhitespace(cidr)));
  }
  return absl::OkStatus();
}

// Sets the field at `path` ("limits.max_per_host") of `config` from `value`.
absl::Status SetField(absl::string_view path, absl::string_view value,
                      fetch::v1::ServerConfig* config) {
  if (value.empty()) {
    return absl::InvalidArgumentError("must not be empty");
  }
  Message* message = config;
  const std::vector<absl::string_view> parts = absl::StrSplit(path, '.');
  for (size_t i = 0; i < parts.size(); ++i) {
    const FieldDescriptor* field =
        message->GetDescriptor()->FindFieldByName(std::string(parts[i]));
    if (field != nullptr && i + 1 == parts.size() && field->is_repeated() &&
        field->message_type() == fetch::v1::AddressRule::descriptor()) {
      return SetAddressRules(*field, value, message);
    }
    if (field == nullptr || field->is_repeated()) {
      return absl::InternalError(
          absl::StrCat("no singular field ", path, " in ServerConfig"));
    }
    if (i + 1 == parts.size()) {
      return SetScalar(*field, value, message);
    }
    if (field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
      return absl::InternalError(
          absl::StrCat(parts[i], " of ", path, " is not a message"));
    }
    message = message->GetReflection()->MutableMessage(message, field);
  }
  return absl::InternalError("empty field path");
}

const ConfigOverride* FindOverride(absl::string_view name) {
  for (const ConfigOverride& entry : kOverrides) {
    if (entry.name == name) return &entry;
  }
  return nullptr;
}

// The value set for `key` in `values`, if any and not empty.
std::optional<std::string> NonEmpty(const ValueMap& values,
                                    absl::string_view key) {
  const auto it = values.find(key);
  if (it == values.end() || it->second.empty()) return std::nullopt;
  return it->second;
}

// " (from FETCHD_X=v)" or " (from --x=v)" when a validation error `message`
// ("field: rule") is about a field the environment or a flag set; else "".
std::string Provenance(absl::string_view message,
                       const ConfigSources& sources) {
  for (const ConfigOverride& entry : kOverrides) {
    if (!absl::StartsWith(message, absl::StrCat(entry.field, ":")) &&
        !absl::StartsWith(message, absl::StrCat(entry.field, "["))) {
      continue;
    }
    if (const auto it = sources.flags.find(entry.name);
        it != sources.flags.end()) {
      return absl::StrCat(" (from --", entry.name, "=", it->second, ")");
    }
    const std::string variable = EnvVarName(entry.name);
    if (std::optional<std::string> value = NonEmpty(sources.env, variable)) {
      return absl::StrCat(" (from ", variable, "=", *value, ")");
    }
  }
  return "";
}

}  // namespace

absl::Span<const ConfigOverride> ConfigOverrides() { return kOverrides; }

std::string EnvVarName(absl::string_view name) {
  return absl::StrCat("FETCHD_", absl::AsciiStrToUpper(name));
}

absl::Status ApplyEnvOverrides(const ValueMap& env,
                               fetch::v1::ServerConfig* config) {
  for (const ConfigOverride& entry : kOverrides) {
    const std::string variable = EnvVarName(entry.name);
    const std::optional<std::string> value = NonEmpty(env, variable);
    if (!value.has_value()) continue;
    if (absl::Status s = SetField(entry.field, *value, config); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat(variable, ": ", s.message()));
    }
  }
  return absl::OkStatus();
}

absl::Status ApplyFlagOverrides(const ValueMap& flags,
                                fetch::v1::ServerConfig* config) {
  for (const auto& [name, value] : flags) {
    if (name == kConfigFileFlag) continue;
    const ConfigOverride* entry = FindOverride(name);
    if (entry == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, ": not a config override"));
    }
    if (absl::Status s = SetField(entry->field, value, config); !s.ok()) {
      return absl::Status(s.code(),
                          absl::StrCat("--", name, ": ", s.message()));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<fetch::v1::ServerConfig> BuildServerConfig(
    const ConfigSources& sources) {
  fetch::v1::ServerConfig config = DefaultServerConfig();
  std::optional<std::string> path = NonEmpty(sources.flags, kConfigFileFlag);
  if (!path.has_value()) path = NonEmpty(sources.env, kConfigFileEnvVar);
  if (path.has_value()) {
    FETCHD_ASSIGN_OR_RETURN(config, LoadConfigFile(config, *path));
  }
  FETCHD_RETURN_IF_ERROR(ApplyEnvOverrides(sources.env, &config));
  FETCHD_RETURN_IF_ERROR(ApplyFlagOverrides(sources.flags, &config));
  ResolveAutoValues(&config);
  FETCHD_RETURN_IF_ERROR(WithProvenance(ValidateServerConfig(config), sources));
  return config;
}

absl::Status WithProvenance(const absl::Status& status,
                            const ConfigSources& sources) {
  if (status.ok()) return status;
  return absl::Status(
      status.code(),
      absl::StrCat(status.message(), Provenance(status.message(), sources)));
}

std::vector<std::string> UnknownFetchdVariables(const ValueMap& env) {
  std::vector<std::string> unknown;
  for (const auto& entry : env) {
    // Not a structured binding: clang 14 can't capture one in the lambda.
    const std::string& name = entry.first;
    if (!absl::StartsWith(name, "FETCHD_") || name == kConfigFileEnvVar ||
        std::find(std::begin(kOtherFetchdVariables),
                  std::end(kOtherFetchdVariables),
                  name) != std::end(kOtherFetchdVariables)) {
      continue;
    }
    const bool known = std::any_of(
        std::begin(kOverrides), std::end(kOverrides),
        [&](const ConfigOverride& o) { return EnvVarName(o.name) == name; });
    if (!known) unknown.push_back(name);
  }
  return unknown;  // Sorted: ValueMap is ordered.
}

ValueMap EnvironmentMap(const char* const* environment) {
  ValueMap env;
  for (const char* const* entry = environment;
       entry != nullptr && *entry != nullptr; ++entry) {
    const absl::string_view text(*entry);
    const size_t equals = text.find('=');
    if (equals == absl::string_view::npos) continue;
    env.emplace(std::string(text.substr(0, equals)),
                std::string(text.substr(equals + 1)));
  }
  return env;
}

}  // namespace fetchd::config
