// FUZZ_CHECK: the fuzz targets' assertion. A failed invariant prints what
// broke (with the input, escaped) and aborts, which libFuzzer reports as a
// crash and saves the input as crash-<sha1>.
#ifndef FETCHD_FUZZ_FUZZ_CHECK_H_
#define FETCHD_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace fetchd::fuzz {

[[noreturn]] inline void Fail(const char* file, int line, const char* cond,
                              const std::string& detail) {
  std::fprintf(stderr, "%s:%d: invariant failed: %s\n  %s\n", file, line, cond,
               detail.c_str());
  std::abort();
}

// `text` escaped for a one-line message, quoted. (Debian's abseil has its
// own string_view, distinct from std::string_view.)
inline std::string Quote(absl::string_view text) {
  return absl::StrCat("\"", absl::CHexEscape(text), "\"");
}
inline std::string Quote(const std::string& text) {
  return Quote(absl::string_view(text));
}
inline std::string Quote(std::string_view text) {
  return Quote(absl::string_view(text.data(), text.size()));
}

}  // namespace fetchd::fuzz

#define FUZZ_CHECK(cond, ...)                                              \
  do {                                                                     \
    if (!(cond)) {                                                         \
      ::fetchd::fuzz::Fail(__FILE__, __LINE__, #cond,                      \
                           ::absl::StrCat("" __VA_OPT__(, ) __VA_ARGS__)); \
    }                                                                      \
  } while (0)

#endif  // FETCHD_FUZZ_FUZZ_CHECK_H_
