#include "tests/testing/test_pki.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"

namespace fetchd::testing {
namespace {

struct PkeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
struct X509Free {
  void operator()(X509* cert) const { X509_free(cert); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;

absl::Status OpenSslError(absl::string_view what) {
  return absl::InternalError(absl::StrCat("OpenSSL: ", what, " failed"));
}

// A subject or issuer name with just a CN.
bool SetCommonName(X509_NAME* name, const std::string& cn) {
  return X509_NAME_add_entry_by_txt(
             name, "CN", MBSTRING_ASC,
             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
             0) == 1;
}

bool AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  if (ext == nullptr) return false;
  const bool ok = X509_add_ext(cert, ext, -1) == 1;
  X509_EXTENSION_free(ext);
  return ok;
}

struct Issued {
  X509Ptr cert;
  PkeyPtr key;
};

// A certificate for `cn` signed by `issuer` (self-signed when null) with the
// given extensions (NID, config value).
absl::StatusOr<Issued> Issue(
    const std::string& cn, const Issued* issuer,
    const std::vector<std::pair<int, std::string>>& extensions) {
  static long serial = 1;  // NOLINT(runtime/int)
  Issued out;
  out.key.reset(EVP_EC_gen("P-256"));
  if (out.key == nullptr) return OpenSslError("EVP_EC_gen");
  out.cert.reset(X509_new());
  X509* cert = out.cert.get();
  if (cert == nullptr || X509_set_version(cert, 2) != 1 ||
      ASN1_INTEGER_set(X509_get_serialNumber(cert), serial++) != 1 ||
      X509_gmtime_adj(X509_getm_notBefore(cert), -3600) == nullptr ||
      X509_gmtime_adj(X509_getm_notAfter(cert), 24 * 3600) == nullptr ||
      X509_set_pubkey(cert, out.key.get()) != 1 ||
      !SetCommonName(X509_get_subject_name(cert), cn)) {
    return OpenSslError("building a certificate");
  }
  X509* issuer_cert = issuer == nullptr ? cert : issuer->cert.get();
  if (X509_set_issuer_name(cert, X509_get_subject_name(issuer_cert)) != 1) {
    return OpenSslError("X509_set_issuer_name");
  }
  for (const auto& [nid, value] : extensions) {
    if (!AddExtension(cert, issuer_cert, nid, value)) {
      return OpenSslError(absl::StrCat("extension ", value));
    }
  }
  EVP_PKEY* signer = issuer == nullptr ? out.key.get() : issuer->key.get();
  if (X509_sign(cert, signer, EVP_sha256()) == 0) {
    return OpenSslError("X509_sign");
  }
  return out;
}

absl::StatusOr<Issued> IssueCa(const std::string& cn) {
  return Issue(cn, nullptr,
               {{NID_basic_constraints, "critical,CA:TRUE"},
                {NID_key_usage, "critical,keyCertSign,cRLSign"},
                {NID_subject_key_identifier, "hash"}});
}

absl::StatusOr<Issued> IssueLeaf(const std::string& cn, const Issued& ca,
                                 const std::string& san, bool server) {
  return Issue(cn, &ca,
               {{NID_basic_constraints, "critical,CA:FALSE"},
                {NID_key_usage, "critical,digitalSignature,keyEncipherment"},
                {NID_ext_key_usage, server ? "serverAuth" : "clientAuth"},
                {NID_subject_alt_name, san},
                {NID_authority_key_identifier, "keyid"}});
}

absl::Status WritePem(const std::string& path, const X509* cert,
                      const EVP_PKEY* key) {
  FILE* file = std::fopen(path.c_str(), "w");
  if (file == nullptr) return absl::InternalError("cannot write " + path);
  const bool ok = cert != nullptr
                      ? PEM_write_X509(file, cert) == 1
                      : PEM_write_PrivateKey(file, key, nullptr, nullptr, 0,
                                             nullptr, nullptr) == 1;
  return std::fclose(file) == 0 && ok
             ? absl::OkStatus()
             : absl::InternalError("cannot write " + path);
}

absl::Status WritePair(const std::string& cert_path,
                       const std::string& key_path, const Issued& issued) {
  if (absl::Status s = WritePem(cert_path, issued.cert.get(), nullptr);
      !s.ok()) {
    return s;
  }
  return WritePem(key_path, nullptr, issued.key.get());
}

}  // namespace

absl::StatusOr<TestPki> TestPki::Create(
    const std::string& dir, const std::vector<std::string>& client_names) {
  TestPki pki;
  pki.dir = dir;
  pki.ca_cert = dir + "/ca.pem";
  pki.server_cert = dir + "/server.pem";
  pki.server_key = dir + "/server.key";
  pki.untrusted_client_cert = dir + "/intruder.pem";
  pki.untrusted_client_key = dir + "/intruder.key";

  absl::StatusOr<Issued> ca = IssueCa("fetchd test CA");
  if (!ca.ok()) return ca.status();
  if (absl::Status s = WritePem(pki.ca_cert, ca->cert.get(), nullptr);
      !s.ok()) {
    return s;
  }
  absl::StatusOr<Issued> server =
      IssueLeaf("localhost", *ca, "IP:127.0.0.1,DNS:localhost", true);
  if (!server.ok()) return server.status();
  if (absl::Status s = WritePair(pki.server_cert, pki.server_key, *server);
      !s.ok()) {
    return s;
  }
  for (const std::string& name : client_names) {
    absl::StatusOr<Issued> client = IssueLeaf(name, *ca, "DNS:" + name, false);
    if (!client.ok()) return client.status();
    if (absl::Status s =
            WritePair(pki.ClientCert(name), pki.ClientKey(name), *client);
        !s.ok()) {
      return s;
    }
  }
  absl::StatusOr<Issued> rogue_ca = IssueCa("not the fetchd test CA");
  if (!rogue_ca.ok()) return rogue_ca.status();
  absl::StatusOr<Issued> intruder =
      IssueLeaf("intruder", *rogue_ca, "DNS:intruder", false);
  if (!intruder.ok()) return intruder.status();
  if (absl::Status s = WritePair(pki.untrusted_client_cert,
                                 pki.untrusted_client_key, *intruder);
      !s.ok()) {
    return s;
  }
  return pki;
}

std::string ReadTextFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

}  // namespace fetchd::testing
