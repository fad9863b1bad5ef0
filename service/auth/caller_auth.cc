#include "service/auth/caller_auth.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cerrno>
#include <fstream>
#include <iterator>
#include <set>
#include <system_error>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "grpcpp/security/server_credentials.h"
#include "service/common/status_macros.h"

namespace fetchd::auth {
namespace {

// Certificates, keys and token files are small; a larger file is a mistake.
constexpr std::streamsize kMaxFileBytes = 1 << 20;
// Caps as for limits.max_pending and limits.max_active_calls.
constexpr uint32_t kMaxPending = 100000000;
constexpr uint32_t kMaxActiveCalls = 1000000;

absl::Status Invalid(absl::string_view field, absl::string_view rule) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", rule));
}

absl::StatusOr<std::string> ReadSmallFile(absl::string_view field,
                                          const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    // An I/O failure, not a bad config: the file may appear later.
    return absl::FailedPreconditionError(
        absl::StrCat(field, ": cannot read \"", path,
                     "\": ", std::generic_category().message(errno)));
  }
  std::string text;
  text.resize(static_cast<size_t>(kMaxFileBytes) + 1);
  in.read(text.data(), kMaxFileBytes + 1);
  if (in.bad()) {
    return absl::FailedPreconditionError(
        absl::StrCat(field, ": cannot read \"", path, "\""));
  }
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > static_cast<size_t>(kMaxFileBytes)) {
    return Invalid(field, absl::StrCat("\"", path, "\" is larger than ",
                                       kMaxFileBytes, " bytes"));
  }
  return text;
}

// RAII for the OpenSSL objects used to check PEM files.
struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* x509) const { X509_free(x509); }
};
struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;

BioPtr MemoryBio(const std::string& pem) {
  return BioPtr(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

// The certificates of a PEM file, in order; errors if there is none or one
// doesn't parse.
absl::StatusOr<std::vector<X509Ptr>> ParseCertificates(absl::string_view field,
                                                       const std::string& path,
                                                       const std::string& pem) {
  std::vector<X509Ptr> certs;
  BioPtr bio = MemoryBio(pem);
  ERR_clear_error();
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certs.emplace_back(cert);
  }
  // The loop ends with a "no start line" error at the end of the input;
  // anything else is a broken certificate.
  const unsigned long error = ERR_peek_last_error();  // NOLINT(runtime/int)
  ERR_clear_error();
  if (ERR_GET_REASON(error) != PEM_R_NO_START_LINE && error != 0) {
    return Invalid(field, absl::StrCat("\"", path,
                                       "\" holds a PEM certificate that does "
                                       "not parse"));
  }
  if (certs.empty()) {
    return Invalid(field, absl::StrCat("\"", path,
                                       "\" holds no PEM certificate "
                                       "(-----BEGIN CERTIFICATE-----)"));
  }
  return certs;
}

absl::Status CheckRules(const fetch::v1::CallerPolicy& policy,
                        const std::string& field, CallerRules* rules) {
  if (policy.max_pending() > kMaxPending) {
    return Invalid(absl::StrCat(field, ".max_pending"),
                   absl::StrCat("must be between 0 and ", kMaxPending, ", got ",
                                policy.max_pending()));
  }
  if (policy.max_active_calls() > kMaxActiveCalls) {
    return Invalid(absl::StrCat(field, ".max_active_calls"),
                   absl::StrCat("must be between 0 and ", kMaxActiveCalls,
                                ", got ", policy.max_active_calls()));
  }
  FETCHD_ASSIGN_OR_RETURN(
      rules->allowed_hosts,
      HostAllowList::Create(
          std::vector<std::string>(policy.allowed_hosts().begin(),
                                   policy.allowed_hosts().end()),
          absl::StrCat(field, ".allowed_hosts")));
  rules->field = field;
  rules->max_pending = policy.max_pending();
  rules->max_active_calls = policy.max_active_calls();
  return absl::OkStatus();
}

}  // namespace

absl::Status CallerAuth::CheckConfig(const fetch::v1::Auth& config) {
  FETCHD_RETURN_IF_ERROR(CheckCombination(config));
  CallerAuth scratch;
  return scratch.LoadCallers(config);
}

absl::StatusOr<std::unique_ptr<CallerAuth>> CallerAuth::Load(
    const fetch::v1::Auth& config) {
  FETCHD_RETURN_IF_ERROR(CheckCombination(config));
  std::unique_ptr<CallerAuth> auth(new CallerAuth());
  FETCHD_RETURN_IF_ERROR(auth->LoadCertificates(config));
  auth->require_client_cert_ = config.require_client_cert();
  FETCHD_RETURN_IF_ERROR(auth->LoadTokens(config));
  auth->auth_required_ = auth->tokens_enabled_ || auth->require_client_cert_;
  FETCHD_RETURN_IF_ERROR(auth->LoadCallers(config));
  return auth;
}

absl::Status CallerAuth::CheckCombination(const fetch::v1::Auth& config) {
  const bool has_cert = !config.tls_cert_file().empty();
  if (has_cert != !config.tls_key_file().empty()) {
    return Invalid(has_cert ? "auth.tls_key_file" : "auth.tls_cert_file",
                   "auth.tls_cert_file and auth.tls_key_file must be set "
                   "together");
  }
  if (!config.client_ca_file().empty() && !has_cert) {
    return Invalid("auth.client_ca_file",
                   "needs TLS: set auth.tls_cert_file and auth.tls_key_file");
  }
  if (config.require_client_cert() && config.client_ca_file().empty()) {
    return Invalid("auth.require_client_cert",
                   "needs auth.client_ca_file, the CA client certificates "
                   "must chain to");
  }
  return absl::OkStatus();
}

absl::Status CallerAuth::LoadCertificates(const fetch::v1::Auth& config) {
  if (!config.tls_cert_file().empty()) {
    FETCHD_ASSIGN_OR_RETURN(
        std::string cert,
        ReadSmallFile("auth.tls_cert_file", config.tls_cert_file()));
    FETCHD_ASSIGN_OR_RETURN(
        const std::vector<X509Ptr> chain,
        ParseCertificates("auth.tls_cert_file", config.tls_cert_file(), cert));
    FETCHD_ASSIGN_OR_RETURN(
        std::string key,
        ReadSmallFile("auth.tls_key_file", config.tls_key_file()));
    BioPtr bio = MemoryBio(key);
    PkeyPtr pkey(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
    ERR_clear_error();
    if (pkey == nullptr) {
      return Invalid("auth.tls_key_file",
                     absl::StrCat("\"", config.tls_key_file(),
                                  "\" holds no unencrypted PEM private key"));
    }
    if (X509_check_private_key(chain.front().get(), pkey.get()) != 1) {
      ERR_clear_error();
      return Invalid("auth.tls_key_file",
                     absl::StrCat("\"", config.tls_key_file(),
                                  "\" is not the key of the first "
                                  "certificate of \"",
                                  config.tls_cert_file(), "\""));
    }
    cert_pem_ = std::move(cert);
    key_pem_ = std::move(key);
  }
  if (!config.client_ca_file().empty()) {
    FETCHD_ASSIGN_OR_RETURN(
        std::string ca,
        ReadSmallFile("auth.client_ca_file", config.client_ca_file()));
    FETCHD_RETURN_IF_ERROR(
        ParseCertificates("auth.client_ca_file", config.client_ca_file(), ca));
    client_ca_pem_ = std::move(ca);
  }
  return absl::OkStatus();
}

absl::Status CallerAuth::LoadTokens(const fetch::v1::Auth& config) {
  if (!config.token_file().empty()) {
    FETCHD_ASSIGN_OR_RETURN(
        const std::string text,
        ReadSmallFile("auth.token_file", config.token_file()));
    absl::StatusOr<TokenTable> tokens = TokenTable::Parse(text);
    if (!tokens.ok()) {
      return Invalid("auth.token_file",
                     absl::StrCat("\"", config.token_file(),
                                  "\": ", tokens.status().message()));
    }
    if (tokens->empty()) {
      return Invalid("auth.token_file",
                     absl::StrCat("\"", config.token_file(),
                                  "\" holds no \"NAME TOKEN\" line"));
    }
    tokens_ = *std::move(tokens);
    tokens_enabled_ = true;
  }
  return absl::OkStatus();
}

absl::Status CallerAuth::LoadCallers(const fetch::v1::Auth& config) {
  std::set<std::string> seen;
  for (int i = 0; i < config.callers_size(); ++i) {
    const fetch::v1::CallerPolicy& policy = config.callers(i);
    const std::string field = absl::StrCat("auth.callers[", i, "]");
    if (!IsValidCallerName(policy.name())) {
      return Invalid(absl::StrCat(field, ".name"),
                     absl::StrCat("must be 1 to 128 characters of "
                                  "[A-Za-z0-9._@:/-], got \"",
                                  policy.name(), "\""));
    }
    if (!seen.insert(policy.name()).second) {
      return Invalid(absl::StrCat(field, ".name"),
                     absl::StrCat("\"", policy.name(),
                                  "\" is the name of an earlier caller"));
    }
    CallerRules rules;
    FETCHD_RETURN_IF_ERROR(CheckRules(policy, field, &rules));
    names_.push_back(policy.name());
    rules_.push_back(std::move(rules));
  }
  if (!config.default_caller().name().empty()) {
    return Invalid("auth.default_caller.name", "must be empty");
  }
  FETCHD_RETURN_IF_ERROR(CheckRules(config.default_caller(),
                                    "auth.default_caller", &default_rules_));
  return absl::OkStatus();
}

std::shared_ptr<grpc::ServerCredentials> CallerAuth::ServerCredentials() const {
  if (!tls()) return grpc::InsecureServerCredentials();
  grpc_ssl_client_certificate_request_type request =
      GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE;
  if (require_client_cert_) {
    request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  } else if (!client_ca_pem_.empty()) {
    request = GRPC_SSL_REQUEST_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  grpc::SslServerCredentialsOptions options(request);
  options.pem_root_certs = client_ca_pem_;
  options.pem_key_cert_pairs.push_back({key_pem_, cert_pem_});
  return grpc::SslServerCredentials(options);
}

Caller CallerAuth::Named(std::string name) const {
  Caller caller;
  caller.rules = &default_rules_;
  for (size_t i = 0; i < names_.size(); ++i) {
    if (names_[i] == name) {
      caller.rules = &rules_[i];
      caller.configured = true;
      break;
    }
  }
  caller.name = std::move(name);
  return caller;
}

absl::StatusOr<Caller> CallerAuth::Identify(
    absl::Span<const std::string> peer_identities,
    std::optional<absl::string_view> authorization) const {
  if (tokens_enabled_ && authorization.has_value()) {
    absl::string_view value = absl::StripAsciiWhitespace(*authorization);
    // The scheme is case-insensitive (RFC 9110, 11.1).
    if (value.size() < 7 ||
        !absl::EqualsIgnoreCase(value.substr(0, 7), "bearer ")) {
      return absl::UnauthenticatedError(
          "authorization metadata must be \"Bearer TOKEN\"");
    }
    value.remove_prefix(7);
    std::optional<std::string> name =
        tokens_.Lookup(absl::StripLeadingAsciiWhitespace(value));
    if (!name.has_value()) {
      return absl::UnauthenticatedError("unknown bearer token");
    }
    return Named(*std::move(name));
  }
  if (!peer_identities.empty()) {
    for (const std::string& identity : peer_identities) {
      for (const std::string& name : names_) {
        if (identity == name) return Named(identity);
      }
    }
    return Named(peer_identities.front());
  }
  if (auth_required_) {
    if (!tokens_enabled_) {
      return absl::UnauthenticatedError(
          "fetchd requires a client certificate with a SAN or CN");
    }
    return absl::UnauthenticatedError(absl::StrCat(
        "fetchd requires a bearer token (metadata \"authorization: Bearer "
        "TOKEN\")",
        client_ca_pem_.empty() ? "" : " or a client certificate"));
  }
  return Named("");
}

}  // namespace fetchd::auth
