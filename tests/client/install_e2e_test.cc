// `cmake --install` gives a linkable C++ client (issue 16 items 6 and 11):
// the build tree is installed into a temporary prefix, README.md's C++
// client example (its CMakeLists.txt and its program, taken from the
// README as printed) is built out of tree against that prefix with
// find_package(fetchd_client), and run against a real fetchd. Nothing is
// downloaded: only Debian's packages and the installed tree.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/e2e/fetchd_e2e_fixture.h"
#include "tests/e2e/subprocess.h"

namespace fetchd::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Installing and compiling against gRPC's headers is slow on 2 cores.
constexpr absl::Duration kBuildTimeout = absl::Minutes(4);

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in),
                     std::istreambuf_iterator<char>());
}

// The body of the first ````language` block after the line `heading`.
absl::StatusOr<std::string> CodeBlockAfter(const std::string& markdown,
                                           absl::string_view heading,
                                           absl::string_view language) {
  const size_t section = markdown.find(absl::StrCat("\n", heading, "\n"));
  if (section == std::string::npos) {
    return absl::NotFoundError(absl::StrCat("no heading '", heading, "'"));
  }
  const std::string open = absl::StrCat("\n```", language, "\n");
  const size_t start = markdown.find(open, section);
  if (start == std::string::npos) {
    return absl::NotFoundError(absl::StrCat("no ```", language, " block"));
  }
  const size_t body = start + open.size();
  const size_t end = markdown.find("\n```\n", body - 1);
  if (end == std::string::npos) {
    return absl::NotFoundError(absl::StrCat("unclosed ```", language));
  }
  return markdown.substr(body, end + 1 - body);
}

class InstallE2eTest : public FetchdE2eTest {
 protected:
  // Runs a build tool; fails the test unless it exits 0.
  void Run(std::vector<std::string> argv) {
    absl::StatusOr<ExitInfo> info = RunSubprocess(argv, kBuildTimeout);
    ASSERT_TRUE(info.ok()) << info.status();
    ASSERT_EQ(info->exit_code, 0) << absl::StrJoin(argv, " ") << "\n"
                                  << Describe(*info) << "\n"
                                  << info->stdout_text;
  }
};

TEST_F(InstallE2eTest, ReadmeClientExampleBuildsAgainstTheInstallAndRuns) {
  const std::string prefix = (dir_ / "prefix").string();
  ASSERT_NO_FATAL_FAILURE(
      Run({CMAKE_COMMAND, "--install", FETCHD_BINARY_DIR, "--prefix", prefix}));
  for (absl::string_view installed :
       {"bin/fetchd", "bin/fetchctl", "include/fetchd/client/fetch_client.h",
        "include/fetchd/fetch/v1/fetch.pb.h",
        "include/fetchd/fetch/v1/fetch.grpc.pb.h",
        "lib/cmake/fetchd_client/fetchd_clientConfig.cmake"}) {
    EXPECT_TRUE(std::filesystem::exists(std::filesystem::path(prefix) /
                                        std::string(installed)))
        << installed;
  }

  const std::string readme =
      ReadAll(std::string(FETCHD_SOURCE_DIR) + "/README.md");
  absl::StatusOr<std::string> cmake =
      CodeBlockAfter(readme, "### C++ client", "cmake");
  ASSERT_TRUE(cmake.ok()) << cmake.status();
  absl::StatusOr<std::string> program =
      CodeBlockAfter(readme, "### C++ client", "cpp");
  ASSERT_TRUE(program.ok()) << program.status();
  const std::filesystem::path source = dir_ / "consumer";
  std::filesystem::create_directories(source);
  std::ofstream(source / "CMakeLists.txt") << *cmake;
  std::ofstream(source / "fetch_urls.cc") << *program;

  const std::string build = (dir_ / "consumer-build").string();
  std::vector<std::string> configure = {
      CMAKE_COMMAND,
      "-S",
      source.string(),
      "-B",
      build,
      "-G",
      "Ninja",
      absl::StrCat("-DCMAKE_MAKE_PROGRAM=", CMAKE_MAKE_PROGRAM),
      absl::StrCat("-DCMAKE_CXX_COMPILER=", CMAKE_CXX_COMPILER),
      "-DCMAKE_BUILD_TYPE=Release",
      absl::StrCat("-DCMAKE_PREFIX_PATH=", prefix)};
  // A sanitizer build installs instrumented libraries: the consumer must
  // be built with the same sanitizers to link against them.
  if (const std::string sanitize = FETCHD_SANITIZE; !sanitize.empty()) {
    configure.push_back(
        absl::StrCat("-DCMAKE_CXX_FLAGS=-fsanitize=", sanitize));
    configure.push_back(
        absl::StrCat("-DCMAKE_EXE_LINKER_FLAGS=-fsanitize=", sanitize));
  }
  ASSERT_NO_FATAL_FAILURE(Run(configure));
  ASSERT_NO_FATAL_FAILURE(Run({CMAKE_COMMAND, "--build", build}));

  // The installed fetchd, and the example against it.
  absl::StatusOr<RunningFetchd> started =
      StartFetchdProcess(prefix + "/bin/fetchd", (dir_ / "port").string(),
                         {"--workers=1"}, {}, kStartTimeout);
  ASSERT_TRUE(started.ok()) << started.status();
  fetchd_ = std::move(started->process);
  fetchd_address_ = std::move(started->address);
  absl::StatusOr<ExitInfo> info = RunSubprocess(
      {build + "/fetch_urls", fetchd_address_, http_.Url("/echo")},
      kProcessTimeout);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->exit_code, 0) << Describe(*info);
  // The GET and the POST of the example, in either order.
  std::vector<std::string> lines =
      absl::StrSplit(info->stdout_text, '\n', absl::SkipEmpty());
  std::sort(lines.begin(), lines.end());
  EXPECT_THAT(lines,
              ElementsAre("0 200 ERROR_KIND_NONE", "1 200 ERROR_KIND_NONE"));
  EXPECT_EQ(http_.RequestCount("/echo", "POST"), 1);

  // The installed fetchctl works too.
  info =
      RunSubprocess({prefix + "/bin/fetchctl", "--version"}, kProcessTimeout);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->exit_code, 0) << Describe(*info);
  EXPECT_THAT(info->stdout_text, HasSubstr("fetchctl "));
}

}  // namespace
}  // namespace fetchd::testing
