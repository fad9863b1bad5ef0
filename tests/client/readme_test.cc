// README.md stays renderable: every code fence is closed, and a fence that
// has an info string ("```sh") only ever opens a block. A lost opening
// fence turns the next closing one into an opener and the page after it
// into code (issue 16: the `fetchctl -v` sample).
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "gtest/gtest.h"

namespace fetchd::testing {
namespace {

// The problems of `markdown`'s ``` fences, one per line; "" if none.
std::string FenceProblems(const std::string& markdown) {
  std::string problems;
  std::istringstream in(markdown);
  std::string line;
  int number = 0;
  int open_at = 0;  // Line of the open fence, 0 outside a block.
  while (std::getline(in, line)) {
    ++number;
    absl::string_view text = absl::StripLeadingAsciiWhitespace(line);
    if (!absl::ConsumePrefix(&text, "```")) continue;
    const absl::string_view info = absl::StripAsciiWhitespace(text);
    if (open_at == 0) {
      open_at = number;
    } else if (info.empty()) {
      open_at = 0;
    } else {
      absl::StrAppend(&problems, "line ", number, ": \"", line,
                      "\" opens a block inside the one opened on line ",
                      open_at, " (a fence is missing before it)\n");
      open_at = number;
    }
  }
  if (open_at != 0) {
    absl::StrAppend(&problems, "line ", open_at,
                    ": the block opened here is never closed\n");
  }
  return problems;
}

TEST(ReadmeTest, CodeFencesAreBalanced) {
  std::ifstream file(std::string(FETCHD_SOURCE_DIR) + "/README.md");
  ASSERT_TRUE(file) << "cannot read README.md";
  const std::string readme((std::istreambuf_iterator<char>(file)),
                           std::istreambuf_iterator<char>());
  EXPECT_EQ(FenceProblems(readme), "");
}

TEST(ReadmeTest, TheCheckFindsAMissingOpeningFence) {
  EXPECT_EQ(FenceProblems("```sh\na\n```\ntext\n```cpp\nb\n```\n"), "");
  EXPECT_NE(FenceProblems("# a\n```\ntext\n```sh\nb\n```\n"), "");
  EXPECT_NE(FenceProblems("```sh\na\n"), "");
}

}  // namespace
}  // namespace fetchd::testing
