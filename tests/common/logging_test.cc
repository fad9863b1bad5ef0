#include "service/common/logging.h"

#include <chrono>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "spdlog/details/log_msg.h"
#include "spdlog/sinks/ostream_sink.h"

namespace fetchd::logging {
namespace {

using std::string_literals::operator""s;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;

// A logger with JsonFormatter writing to a string.
class CapturedLogger {
 public:
  explicit CapturedLogger(spdlog::level::level_enum level = spdlog::level::info)
      : logger_("test",
                std::make_shared<spdlog::sinks::ostream_sink_st>(out_)) {
    logger_.set_formatter(std::make_unique<JsonFormatter>());
    logger_.set_level(level);
  }

  spdlog::logger& logger() { return logger_; }

  std::vector<std::string> Lines() const {
    return absl::StrSplit(out_.str(), '\n', absl::SkipEmpty());
  }
  std::string Text() const { return out_.str(); }

 private:
  std::ostringstream out_;
  spdlog::logger logger_;
};

// Parses one line as a JSON object; fails the test if it is not one.
google::protobuf::Struct ParseLine(const std::string& line) {
  google::protobuf::Struct parsed;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(line.data(), line.size()), &parsed);
  EXPECT_TRUE(status.ok()) << status.ToString() << ": " << line;
  return parsed;
}

std::string StringField(const google::protobuf::Struct& object,
                        const std::string& key) {
  const auto it = object.fields().find(key);
  if (it == object.fields().end()) {
    ADD_FAILURE() << "no key " << key;
    return "";
  }
  return it->second.string_value();
}

TEST(JsonFormatterTest, FormatsTheStandardKeysInOrder) {
  // 2024-05-01T12:34:56.789Z
  const auto time = std::chrono::system_clock::time_point(
      std::chrono::milliseconds(1714566896789));
  const spdlog::details::log_msg msg(time, spdlog::source_loc{}, "fetchd",
                                     spdlog::level::warn, "hello");
  spdlog::memory_buf_t out;
  JsonFormatter().format(msg, out);
  EXPECT_EQ(std::string(out.data(), out.size()),
            R"({"ts":"2024-05-01T12:34:56.789Z","level":"warn",)"
            R"("logger":"fetchd","msg":"hello"})"
            "\n");
}

TEST(JsonFormatterTest, EveryLineIsAJsonObjectWithTheCurrentTime) {
  CapturedLogger captured;
  const absl::Time before = absl::Now() - absl::Milliseconds(1);
  captured.logger().info("first {}", 1);
  captured.logger().error("second");
  const absl::Time after = absl::Now() + absl::Milliseconds(1);

  const std::vector<std::string> lines = captured.Lines();
  ASSERT_EQ(lines.size(), 2u) << captured.Text();
  const google::protobuf::Struct first = ParseLine(lines[0]);
  EXPECT_EQ(StringField(first, "level"), "info");
  EXPECT_EQ(StringField(first, "logger"), "test");
  EXPECT_EQ(StringField(first, "msg"), "first 1");
  const std::string ts = StringField(first, "ts");
  EXPECT_THAT(
      ts, MatchesRegex("[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}"
                       "\\.[0-9]{3}Z"));
  absl::Time parsed;
  std::string error;
  ASSERT_TRUE(absl::ParseTime(absl::RFC3339_full, ts, &parsed, &error))
      << error;
  EXPECT_GE(parsed, absl::FromUnixMillis(absl::ToUnixMillis(before)));
  EXPECT_LE(parsed, after);
  EXPECT_EQ(StringField(ParseLine(lines[1]), "level"), "error");
}

TEST(JsonFormatterTest, EscapesSoThatAnyMessageIsValidJson) {
  const struct {
    std::string message;
    std::string decoded;  // What a JSON parser reads back.
  } kCases[] = {
      {R"(say "hi")", R"(say "hi")"},
      {R"(C:\dir\file)", R"(C:\dir\file)"},
      {"line1\nline2\r\n\ttab", "line1\nline2\r\n\ttab"},
      {"nul\0bell\x07\x1f\x7f"s, "nul\0bell\x07\x1f\x7f"s},
      {"{}", "{}"},
      {"caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80",
       "caf\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x98\x80"},
      // Not UTF-8: a stray continuation byte, a truncated sequence, an
      // overlong '/', a surrogate, a byte that never starts a sequence.
      {"a\x80z", "a\xef\xbf\xbdz"},
      {"a\xe6\x97", "a\xef\xbf\xbd\xef\xbf\xbd"},
      {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},
      {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
      {"\xff", "\xef\xbf\xbd"},
  };
  for (const auto& c : kCases) {
    SCOPED_TRACE(c.message);
    CapturedLogger captured;
    Log(captured.logger(), spdlog::level::info, c.message,
        {{"key \"quoted\"", c.message}});
    const std::vector<std::string> lines = captured.Lines();
    ASSERT_EQ(lines.size(), 1u) << captured.Text();
    const google::protobuf::Struct line = ParseLine(lines[0]);
    EXPECT_EQ(StringField(line, "msg"), c.decoded);
    EXPECT_EQ(StringField(line, "key \"quoted\""), c.decoded);
  }
}

TEST(JsonFormatterTest, FieldsFollowTheMessageInOrder) {
  CapturedLogger captured;
  Log(captured.logger(), spdlog::level::info, "listening",
      {{"address", "127.0.0.1:1"},
       {"port", 50051},
       {"negative", int64_t{-3}},
       {"draining", false}});
  captured.logger().info("no fields");

  const std::vector<std::string> lines = captured.Lines();
  ASSERT_EQ(lines.size(), 2u) << captured.Text();
  EXPECT_THAT(lines[0],
              HasSubstr(R"("msg":"listening","address":"127.0.0.1:1",)"
                        R"("port":50051,"negative":-3,"draining":false})"));
  const google::protobuf::Struct parsed = ParseLine(lines[0]);
  EXPECT_EQ(parsed.fields().at("port").number_value(), 50051);
  EXPECT_FALSE(parsed.fields().at("draining").bool_value());
  // Fields belong to their own call only.
  EXPECT_THAT(lines[1], HasSubstr(R"("msg":"no fields"})"));
}

TEST(JsonFormatterTest, MessageIsNotAFormatString) {
  CapturedLogger captured;
  Log(captured.logger(), spdlog::level::info, "braces {} {:d} stay");
  ASSERT_EQ(captured.Lines().size(), 1u);
  EXPECT_EQ(StringField(ParseLine(captured.Lines()[0]), "msg"),
            "braces {} {:d} stay");
}

TEST(JsonFormatterTest, LevelBelowTheLoggersIsNotWritten) {
  CapturedLogger captured(spdlog::level::warn);
  captured.logger().info("hidden");
  Log(captured.logger(), spdlog::level::debug, "hidden too");
  Log(captured.logger(), spdlog::level::critical, "shown");
  const std::vector<std::string> lines = captured.Lines();
  ASSERT_EQ(lines.size(), 1u) << captured.Text();
  EXPECT_EQ(StringField(ParseLine(lines[0]), "level"), "critical");
}

TEST(ParseLogLevelTest, AcceptsTheDocumentedNamesOnly) {
  const struct {
    const char* name;
    spdlog::level::level_enum level;
  } kLevels[] = {
      {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug},
      {"info", spdlog::level::info},   {"warn", spdlog::level::warn},
      {"error", spdlog::level::err},   {"critical", spdlog::level::critical},
      {"off", spdlog::level::off},
  };
  for (const auto& [name, level] : kLevels) {
    absl::StatusOr<spdlog::level::level_enum> parsed = ParseLogLevel(name);
    ASSERT_TRUE(parsed.ok()) << name;
    EXPECT_EQ(*parsed, level);
    EXPECT_EQ(LogLevelName(level), name);
  }
  for (const char* bad : {"", "warning", "err", "INFO", " info"}) {
    absl::StatusOr<spdlog::level::level_enum> parsed = ParseLogLevel(bad);
    ASSERT_FALSE(parsed.ok()) << bad;
    EXPECT_THAT(parsed.status().message(),
                HasSubstr("trace, debug, info, warn, error, critical, off"));
  }
}

}  // namespace
}  // namespace fetchd::logging
