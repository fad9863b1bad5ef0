#include "service/auth/token_table.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace fetchd::auth {
namespace {

constexpr size_t kMaxNameBytes = 128;
constexpr size_t kMinTokenBytes = 16;
constexpr size_t kMaxTokenBytes = 4096;

absl::Status LineError(int line, absl::string_view rule) {
  return absl::InvalidArgumentError(
      absl::StrCat("token file line ", line, ": ", rule));
}

bool IsTokenChar(char c) { return c > ' ' && c < 0x7f; }

}  // namespace

bool IsValidCallerName(absl::string_view name) {
  if (name.empty() || name.size() > kMaxNameBytes) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) &&
        absl::string_view("._@:/-").find(c) == absl::string_view::npos) {
      return false;
    }
  }
  return true;
}

TokenTable::Digest TokenTable::Hash(absl::string_view token) {
  Digest digest;
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(),
         digest.data());
  return digest;
}

absl::StatusOr<TokenTable> TokenTable::Parse(absl::string_view text) {
  TokenTable table;
  std::set<std::string> names;
  std::set<Digest> digests;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line.front() == '#') continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (fields.size() != 2) {
      return LineError(line_number,
                       absl::StrCat("expected \"NAME TOKEN\", got ",
                                    fields.size(), " fields"));
    }
    const absl::string_view name = fields[0];
    const absl::string_view token = fields[1];
    if (!IsValidCallerName(name)) {
      return LineError(line_number,
                       absl::StrCat("name must be 1 to ", kMaxNameBytes,
                                    " characters of [A-Za-z0-9._@:/-]"));
    }
    if (token.size() < kMinTokenBytes || token.size() > kMaxTokenBytes) {
      return LineError(line_number,
                       absl::StrCat("token of \"", name, "\" must be ",
                                    kMinTokenBytes, " to ", kMaxTokenBytes,
                                    " characters, got ", token.size()));
    }
    for (char c : token) {
      if (!IsTokenChar(c)) {
        return LineError(
            line_number,
            absl::StrCat("token of \"", name, "\" must be printable ASCII"));
      }
    }
    if (!names.insert(std::string(name)).second) {
      return LineError(line_number,
                       absl::StrCat("name \"", name, "\" appears twice"));
    }
    Digest digest = Hash(token);
    if (!digests.insert(digest).second) {
      return LineError(line_number,
                       absl::StrCat("token of \"", name,
                                    "\" is also an earlier caller's token"));
    }
    table.entries_.push_back(Entry{std::string(name), digest});
  }
  return table;
}

std::optional<std::string> TokenTable::Lookup(absl::string_view token) const {
  const Digest digest = Hash(token);
  // Every entry is compared, and without branching on the outcome, so the
  // time spent does not tell which entry matched.
  size_t match = entries_.size();
  for (size_t i = 0; i < entries_.size(); ++i) {
    const bool equal = CRYPTO_memcmp(digest.data(), entries_[i].digest.data(),
                                     digest.size()) == 0;
    match = equal ? i : match;
  }
  if (match == entries_.size()) return std::nullopt;
  return entries_[match].name;
}

std::vector<std::string> TokenTable::names() const {
  std::vector<std::string> out;
  out.reserve(entries_.size());
  for (const Entry& e : entries_) out.push_back(e.name);
  return out;
}

}  // namespace fetchd::auth
