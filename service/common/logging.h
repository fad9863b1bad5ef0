// Structured logs: one JSON object per line, for log collectors that read a
// container's stdout.
//
//   {"ts":"2024-05-01T12:34:56.789Z","level":"info","logger":"fetchd",
//    "msg":"fetchd listening on 127.0.0.1:50051, 4 workers","port":50051}
//
// "ts" is RFC 3339 in UTC with milliseconds; "level" is one of the names
// ParseLogLevel() accepts; the message and every string are escaped so that
// each line is valid JSON whatever they contain (quotes, backslashes, control
// characters; a byte that is not valid UTF-8 becomes U+FFFD). Fields passed
// to Log() follow "msg", in order.
//
// JsonFormatter is an ordinary spdlog formatter: spdlog::info("...") through
// a logger that uses it gives a line without extra fields. Thread-safety is
// spdlog's: a logger with an _mt sink may be used from any thread.
#ifndef FETCHD_SERVICE_COMMON_LOGGING_H_
#define FETCHD_SERVICE_COMMON_LOGGING_H_

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <type_traits>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "spdlog/formatter.h"
#include "spdlog/logger.h"

namespace fetchd::logging {

// Parses a level name: "trace", "debug", "info", "warn", "error",
// "critical" or "off" (exactly, lower case). Errors: InvalidArgument naming
// the accepted values.
[[nodiscard]] absl::StatusOr<spdlog::level::level_enum> ParseLogLevel(
    absl::string_view name);

// The name ParseLogLevel() accepts for `level` ("warn", not "warning").
absl::string_view LogLevelName(spdlog::level::level_enum level);

// Appends `text` to `out` as a JSON string literal, quotes included.
void AppendJsonString(absl::string_view text, std::string* out);

// One extra key of a log line. Holds its value as JSON text: a string is
// quoted and escaped, a number or a bool is written as is. Built in the
// argument list of Log(); keeps no reference to its arguments.
class LogField {
 public:
  LogField(absl::string_view key, absl::string_view value) : key_(key) {
    AppendJsonString(value, &json_value_);
  }
  LogField(absl::string_view key, const char* value)
      : LogField(key, absl::string_view(value)) {}
  LogField(absl::string_view key, const std::string& value)
      : LogField(key, absl::string_view(value)) {}
  template <typename Int,
            std::enable_if_t<
                std::is_integral_v<Int> && !std::is_same_v<Int, bool>, int> = 0>
  LogField(absl::string_view key, Int value)
      : key_(key), json_value_(absl::StrCat(value)) {}
  LogField(absl::string_view key, bool value)
      : key_(key), json_value_(value ? "true" : "false") {}

  absl::string_view key() const { return key_; }
  absl::string_view json_value() const { return json_value_; }

 private:
  std::string key_;
  std::string json_value_;
};

// Formats each message as one JSON line (see the file comment). Fields
// given to Log() are written only by a logger that formats on the calling
// thread (not spdlog's async loggers).
class JsonFormatter final : public spdlog::formatter {
 public:
  void format(const spdlog::details::log_msg& msg,
              spdlog::memory_buf_t& dest) override;
  std::unique_ptr<spdlog::formatter> clone() const override;
};

// Logs `msg` (written as is, not a format string) on `logger` at `level`,
// with `fields` after "msg" when the logger uses JsonFormatter.
void Log(spdlog::logger& logger, spdlog::level::level_enum level,
         absl::string_view msg, std::initializer_list<LogField> fields = {});

// Log() on spdlog's default logger.
void Log(spdlog::level::level_enum level, absl::string_view msg,
         std::initializer_list<LogField> fields = {});

// A logger named `name` writing JSON lines to stdout (flushed per line), at
// `level`. Not registered with spdlog; pass it to spdlog::set_default_logger
// to make it the default.
std::shared_ptr<spdlog::logger> MakeJsonStdoutLogger(
    const std::string& name, spdlog::level::level_enum level);

}  // namespace fetchd::logging

#endif  // FETCHD_SERVICE_COMMON_LOGGING_H_
