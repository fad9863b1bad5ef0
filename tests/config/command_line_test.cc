// fetchd's command line: --help lists every flag with its variable, and
// README's list of FETCHD_* variables is exactly the one the flags define,
// so neither can drift from the code.
#include "service/config/command_line.h"

#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "service/config/config_overrides.h"

namespace fetchd::config {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(CommandLineTest, HelpListsEveryOverrideWithItsVariable) {
  const std::string help = FetchdHelp();
  EXPECT_THAT(help, HasSubstr("Usage: fetchd"));
  EXPECT_THAT(help, Not(HasSubstr("fetchd: fetchd:")));
  EXPECT_THAT(help, HasSubstr("--config (FETCHD_CONFIG)"));
  for (const ConfigOverride& entry : ConfigOverrides()) {
    EXPECT_THAT(help, HasSubstr(absl::StrCat("--", entry.name, " (",
                                             EnvVarName(entry.name), ")")));
  }
  for (const char* other : {"--port_file", "--check_config", "--print_config",
                            "--drain_seconds", "--version"}) {
    EXPECT_THAT(help, HasSubstr(other));
  }
  EXPECT_THAT(help, HasSubstr("--policy_allow=CIDR"));
}

TEST(CommandLineTest, ReadmeListsExactlyTheVariablesOfTheFlags) {
  std::ifstream file(std::string(FETCHD_SOURCE_DIR) + "/README.md");
  ASSERT_TRUE(file) << "cannot read README.md";
  std::stringstream text;
  text << file.rdbuf();
  const std::string readme = text.str();
  std::set<std::string> listed;
  const std::regex variable("`(FETCHD_[A-Z0-9_]+)`");
  for (auto it = std::sregex_iterator(readme.begin(), readme.end(), variable);
       it != std::sregex_iterator(); ++it) {
    listed.insert((*it)[1].str());
  }
  // fetchctl's token variable may be mentioned too; it is not fetchd's.
  listed.erase("FETCHD_TOKEN");
  std::set<std::string> defined = {std::string(kConfigFileEnvVar)};
  for (const ConfigOverride& entry : ConfigOverrides()) {
    defined.insert(EnvVarName(entry.name));
  }
  EXPECT_EQ(listed, defined);
}

}  // namespace
}  // namespace fetchd::config
