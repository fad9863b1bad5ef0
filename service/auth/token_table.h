// TokenTable: the bearer tokens of auth.token_file and the caller name each
// one stands for.
//
// File format: one "NAME TOKEN" per line, separated by spaces or tabs;
// blank lines and lines starting with '#' are skipped. Names are 1..128
// characters of [A-Za-z0-9._@:/-]; tokens 16..4096 printable ASCII
// characters without spaces. Names and tokens are unique.
//
// Only SHA-256 digests of the tokens are kept. Lookup() hashes the presented
// token and compares it with every entry in constant time (CRYPTO_memcmp),
// so its timing does not depend on which entry, or how much of one, matched.
// Tokens never appear in an error message.
//
// Thread-safety: immutable after Parse(); Lookup() may run on any thread.
#ifndef FETCHD_SERVICE_AUTH_TOKEN_TABLE_H_
#define FETCHD_SERVICE_AUTH_TOKEN_TABLE_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fetchd::auth {

class TokenTable {
 public:
  TokenTable() = default;

  // Parses the contents of a token file. Errors: InvalidArgument naming the
  // 1-based line and the rule (never quoting the token).
  [[nodiscard]] static absl::StatusOr<TokenTable> Parse(absl::string_view text);

  // The name of `token`, or nullopt if it is not in the table.
  [[nodiscard]] std::optional<std::string> Lookup(
      absl::string_view token) const;

  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }
  // Every name, in file order.
  std::vector<std::string> names() const;

 private:
  using Digest = std::array<uint8_t, 32>;
  struct Entry {
    std::string name;
    Digest digest;
  };
  static Digest Hash(absl::string_view token);

  std::vector<Entry> entries_;
};

// Whether `name` is a valid caller name (see the file format above).
bool IsValidCallerName(absl::string_view name);

}  // namespace fetchd::auth

#endif  // FETCHD_SERVICE_AUTH_TOKEN_TABLE_H_
