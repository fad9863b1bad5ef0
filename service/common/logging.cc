#include "service/common/logging.h"

#include <array>
#include <utility>

#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "spdlog/sinks/stdout_sinks.h"
#include "spdlog/spdlog.h"

namespace fetchd::logging {
namespace {

constexpr std::array<std::pair<absl::string_view, spdlog::level::level_enum>, 7>
    kLevels = {{
        {"trace", spdlog::level::trace},
        {"debug", spdlog::level::debug},
        {"info", spdlog::level::info},
        {"warn", spdlog::level::warn},
        {"error", spdlog::level::err},
        {"critical", spdlog::level::critical},
        {"off", spdlog::level::off},
    }};

// The fields of the Log() call running on this thread, for JsonFormatter:
// spdlog's log_msg has no room for them. Set only while Log() runs.
thread_local const std::initializer_list<LogField>* current_fields = nullptr;

// Length of the well-formed UTF-8 sequence at the start of `text` (which
// starts with a byte >= 0x80), or 0 if it is not one (RFC 3629: no overlong
// forms, no surrogates, nothing above U+10FFFF).
size_t Utf8SequenceLength(absl::string_view text) {
  const auto byte = [&](size_t i) {
    return static_cast<unsigned char>(text[i]);
  };
  const unsigned char lead = byte(0);
  size_t length = 0;
  unsigned char second_min = 0x80;
  unsigned char second_max = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) second_min = 0xA0;  // Overlong.
    if (lead == 0xED) second_max = 0x9F;  // Surrogates.
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) second_min = 0x90;  // Overlong.
    if (lead == 0xF4) second_max = 0x8F;  // Above U+10FFFF.
  } else {
    return 0;
  }
  if (text.size() < length) return 0;
  if (byte(1) < second_min || byte(1) > second_max) return 0;
  for (size_t i = 2; i < length; ++i) {
    if (byte(i) < 0x80 || byte(i) > 0xBF) return 0;
  }
  return length;
}

}  // namespace

absl::StatusOr<spdlog::level::level_enum> ParseLogLevel(
    absl::string_view name) {
  for (const auto& [level_name, level] : kLevels) {
    if (name == level_name) return level;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "must be one of trace, debug, info, warn, error, critical, off; got \"",
      name, "\""));
}

absl::string_view LogLevelName(spdlog::level::level_enum level) {
  for (const auto& [level_name, known] : kLevels) {
    if (level == known) return level_name;
  }
  return "unknown";
}

void AppendJsonString(absl::string_view text, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  size_t i = 0;
  while (i < text.size()) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c >= 0x80) {
      const size_t length = Utf8SequenceLength(text.substr(i));
      if (length == 0) {
        out->append("\\ufffd");
        ++i;
      } else {
        out->append(text.data() + i, length);
        i += length;
      }
      continue;
    }
    switch (c) {
      case '"':
        out->append("\\\"");
        break;
      case '\\':
        out->append("\\\\");
        break;
      case '\n':
        out->append("\\n");
        break;
      case '\r':
        out->append("\\r");
        break;
      case '\t':
        out->append("\\t");
        break;
      case '\b':
        out->append("\\b");
        break;
      case '\f':
        out->append("\\f");
        break;
      default:
        if (c < 0x20 || c == 0x7F) {
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 0xF]);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
    ++i;
  }
  out->push_back('"');
}

void JsonFormatter::format(const spdlog::details::log_msg& msg,
                           spdlog::memory_buf_t& dest) {
  std::string line = absl::StrCat(
      "{\"ts\":\"",
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::FromChrono(msg.time),
                       absl::UTCTimeZone()),
      "\",\"level\":\"", LogLevelName(msg.level), "\",\"logger\":");
  AppendJsonString(
      absl::string_view(msg.logger_name.data(), msg.logger_name.size()), &line);
  line.append(",\"msg\":");
  AppendJsonString(absl::string_view(msg.payload.data(), msg.payload.size()),
                   &line);
  if (current_fields != nullptr) {
    for (const LogField& field : *current_fields) {
      line.push_back(',');
      AppendJsonString(field.key(), &line);
      line.push_back(':');
      line.append(field.json_value().data(), field.json_value().size());
    }
  }
  line.append("}\n");
  dest.append(line.data(), line.data() + line.size());
}

std::unique_ptr<spdlog::formatter> JsonFormatter::clone() const {
  return std::make_unique<JsonFormatter>();
}

void Log(spdlog::logger& logger, spdlog::level::level_enum level,
         absl::string_view msg, std::initializer_list<LogField> fields) {
  const std::initializer_list<LogField>* const outer = current_fields;
  current_fields = &fields;
  logger.log(level, spdlog::string_view_t(msg.data(), msg.size()));
  current_fields = outer;
}

void Log(spdlog::level::level_enum level, absl::string_view msg,
         std::initializer_list<LogField> fields) {
  Log(*spdlog::default_logger_raw(), level, msg, fields);
}

std::shared_ptr<spdlog::logger> MakeJsonStdoutLogger(
    const std::string& name, spdlog::level::level_enum level) {
  auto logger = std::make_shared<spdlog::logger>(
      name, std::make_shared<spdlog::sinks::stdout_sink_mt>());
  logger->set_formatter(std::make_unique<JsonFormatter>());
  logger->set_level(level);
  return logger;
}

}  // namespace fetchd::logging
