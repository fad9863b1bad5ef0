// CallerAuth: who is calling fetchd, and what that caller may do
// (ServerConfig.auth, proto/fetch/v1/config.proto).
//
// Transport. With auth.tls_cert_file and auth.tls_key_file the gRPC
// endpoint serves TLS only (ServerCredentials()). With auth.client_ca_file
// a client certificate is verified against that CA when sent; with
// require_client_cert too (mTLS) the handshake fails without one, so such
// a client never reaches a handler.
//
// Identity of a call (Identify()), first match wins:
//  1. an `authorization: Bearer TOKEN` metadata entry, when auth.token_file
//     is set: the token's name. A token that is sent but unknown, or an
//     authorization entry that is not "Bearer TOKEN", is UNAUTHENTICATED,
//     even if a certificate would identify the caller.
//  2. a verified client certificate: of its identities (every SAN, or the
//     CN when it has no SAN) the first that names a configured caller,
//     else the first one.
//  3. anonymous, unless auth is required (token_file or
//     require_client_cert set): then UNAUTHENTICATED.
// Without token_file an authorization entry is ignored.
//
// Each identity gets the rules (quota, allowed hosts) of the auth.callers
// entry of that name, else those of auth.default_caller. All anonymous
// callers are one caller. Health and reflection are not authenticated
// (only the transport's TLS/mTLS applies to them).
//
// Secrets: tokens are kept as SHA-256 digests (TokenTable) and never appear
// in errors; the key file's contents only go to gRPC.
//
// Thread-safety: immutable after Load(); every method may run on any thread.
#ifndef FETCHD_SERVICE_AUTH_CALLER_AUTH_H_
#define FETCHD_SERVICE_AUTH_CALLER_AUTH_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "fetch/v1/config.pb.h"
#include "grpcpp/security/server_credentials.h"
#include "service/auth/host_allow_list.h"
#include "service/auth/token_table.h"

namespace fetchd::auth {

// The rules of one configured caller, or of the default caller.
struct CallerRules {
  // Where they come from, for messages: "auth.callers[2]" or
  // "auth.default_caller".
  std::string field;
  // 0: no per-caller limit.
  uint32_t max_pending = 0;
  uint32_t max_active_calls = 0;
  HostAllowList allowed_hosts;
};

// The caller of one RPC.
struct Caller {
  // Token name or certificate identity; empty for an anonymous caller.
  std::string name;
  // Never null; owned by the CallerAuth, which outlives every call.
  const CallerRules* rules = nullptr;
  // Whether `name` is an auth.callers entry (a bounded set, fit for a
  // metric label).
  bool configured = false;

  // The name, or "anonymous".
  std::string DisplayName() const {
    return name.empty() ? std::string("anonymous") : name;
  }
};

class CallerAuth {
 public:
  // Checks `config` and reads the files it names: PEM certificates and key
  // must parse and the key must match the certificate; the token file must
  // parse and hold at least one token; caller names must be valid and
  // unique. Errors: InvalidArgument "auth.field: rule" (file errors name
  // the file).
  [[nodiscard]] static absl::StatusOr<std::unique_ptr<CallerAuth>> Load(
      const fetch::v1::Auth& config);
  // Load()'s checks that need no file: which fields go together, the
  // callers. Errors: Load()'s InvalidArgument ones.
  [[nodiscard]] static absl::Status CheckConfig(const fetch::v1::Auth& config);

  // TLS (or mTLS) credentials when auth.tls_cert_file is set, else
  // insecure ones.
  std::shared_ptr<grpc::ServerCredentials> ServerCredentials() const;
  bool tls() const { return !cert_pem_.empty(); }
  // Whether every call must be authenticated.
  bool auth_required() const { return auth_required_; }

  // The caller of an RPC. `peer_identities`: the verified client
  // certificate's identities (empty without one); `authorization`: the
  // value of the call's `authorization` metadata, if it has one.
  // Errors: Unauthenticated, saying what is missing or wrong (never
  // quoting a token).
  [[nodiscard]] absl::StatusOr<Caller> Identify(
      absl::Span<const std::string> peer_identities,
      std::optional<absl::string_view> authorization) const;

 private:
  CallerAuth() = default;
  Caller Named(std::string name) const;
  // The parts of Load(), in its order; the errors are Load()'s.
  // TLS fields that need each other.
  [[nodiscard]] static absl::Status CheckCombination(
      const fetch::v1::Auth& config);
  // The server certificate and key, and the client CA.
  [[nodiscard]] absl::Status LoadCertificates(const fetch::v1::Auth& config);
  [[nodiscard]] absl::Status LoadTokens(const fetch::v1::Auth& config);
  // auth.callers and auth.default_caller.
  [[nodiscard]] absl::Status LoadCallers(const fetch::v1::Auth& config);

  std::string cert_pem_;
  std::string key_pem_;
  std::string client_ca_pem_;
  bool require_client_cert_ = false;
  bool auth_required_ = false;
  TokenTable tokens_;
  bool tokens_enabled_ = false;
  // auth.callers, in config order.
  std::vector<std::string> names_;
  std::vector<CallerRules> rules_;
  CallerRules default_rules_;
};

}  // namespace fetchd::auth

#endif  // FETCHD_SERVICE_AUTH_CALLER_AUTH_H_
