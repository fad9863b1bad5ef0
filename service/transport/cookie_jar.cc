#include "service/transport/cookie_jar.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "service/transport/curl_handles.h"

namespace fetchd::transport {
namespace {

// RFC 6265 cookie-octet (value) and token (name) characters.
bool IsCookieOctet(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u == 0x21 || (u >= 0x23 && u <= 0x2b) || (u >= 0x2d && u <= 0x3a) ||
         (u >= 0x3c && u <= 0x5b) || (u >= 0x5d && u <= 0x7e);
}
bool IsTokenChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u <= 0x20 || u >= 0x7f) return false;
  return absl::string_view("()<>@,;:\\\"/[]?={}").find(c) ==
         absl::string_view::npos;
}
bool IsAttributeChar(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u > 0x20 && u < 0x7f && c != ';' && c != ',';
}

absl::Status CheckCookie(const fetch::v1::Cookie& cookie,
                         absl::string_view field) {
  const auto invalid = [&](absl::string_view part, absl::string_view rule) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".", part, ": ", rule));
  };
  if (cookie.name().empty()) return invalid("name", "is empty");
  if (!std::all_of(cookie.name().begin(), cookie.name().end(), IsTokenChar)) {
    return invalid("name", "has a character a cookie name can't have");
  }
  if (!std::all_of(cookie.value().begin(), cookie.value().end(),
                   IsCookieOctet)) {
    return invalid("value",
                   "has a character a cookie value can't have (CTL, "
                   "whitespace, '\"', ',', ';' or '\\\\')");
  }
  for (const auto& [part, text] :
       {std::pair<absl::string_view, const std::string&>{"domain",
                                                         cookie.domain()},
        {"path", cookie.path()}}) {
    if (!std::all_of(text.begin(), text.end(), IsAttributeChar)) {
      return invalid(part, "has a character a cookie attribute can't have");
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::shared_ptr<CookieJar>> CookieJar::Create(
    const google::protobuf::RepeatedPtrField<fetch::v1::Cookie>& initial,
    absl::string_view field) {
  for (int i = 0; i < initial.size(); ++i) {
    if (absl::Status s =
            CheckCookie(initial[i], absl::StrCat(field, "[", i, "]"));
        !s.ok()) {
      return s;
    }
  }
  std::shared_ptr<CookieJar> jar(new CookieJar());
  jar->share_ = curl_share_init();
  if (jar->share_ == nullptr) return absl::InternalError("curl_share_init");
  if (curl_share_setopt(jar->share_, CURLSHOPT_LOCKFUNC, &CookieJar::Lock) !=
          CURLSHE_OK ||
      curl_share_setopt(jar->share_, CURLSHOPT_UNLOCKFUNC,
                        &CookieJar::Unlock) != CURLSHE_OK ||
      curl_share_setopt(jar->share_, CURLSHOPT_USERDATA, jar.get()) !=
          CURLSHE_OK ||
      curl_share_setopt(jar->share_, CURLSHOPT_SHARE, CURL_LOCK_DATA_COOKIE) !=
          CURLSHE_OK) {
    return absl::InternalError("curl_share_setopt failed");
  }
  // Scoped cookies go into the shared jar through a handle of their own.
  CurlEasyPtr loader;
  for (const fetch::v1::Cookie& cookie : initial) {
    if (cookie.domain().empty()) {
      absl::StrAppend(&jar->unscoped_, jar->unscoped_.empty() ? "" : "; ",
                      cookie.name(), "=", cookie.value());
      continue;
    }
    if (loader == nullptr) {
      loader.reset(curl_easy_init());
      if (loader == nullptr ||
          curl_easy_setopt(loader.get(), CURLOPT_SHARE, jar->share_) !=
              CURLE_OK ||
          curl_easy_setopt(loader.get(), CURLOPT_COOKIEFILE, "") != CURLE_OK) {
        return absl::InternalError("cannot load the initial cookies");
      }
    }
    const std::string line =
        absl::StrCat("Set-Cookie: ", cookie.name(), "=", cookie.value(),
                     "; domain=", cookie.domain(),
                     "; path=", cookie.path().empty() ? "/" : cookie.path(),
                     cookie.secure() ? "; secure" : "");
    if (curl_easy_setopt(loader.get(), CURLOPT_COOKIELIST, line.c_str()) !=
        CURLE_OK) {
      return absl::InternalError("cannot load an initial cookie");
    }
  }
  if (loader != nullptr) Detach(loader.get());
  return jar;
}

CookieJar::~CookieJar() {
  if (share_ != nullptr) curl_share_cleanup(share_);
}

absl::Status CookieJar::Attach(CURL* easy) const {
  if (curl_easy_setopt(easy, CURLOPT_SHARE, share_) != CURLE_OK ||
      curl_easy_setopt(easy, CURLOPT_COOKIEFILE, "") != CURLE_OK ||
      (!unscoped_.empty() &&
       curl_easy_setopt(easy, CURLOPT_COOKIE, unscoped_.c_str()) != CURLE_OK)) {
    return absl::InternalError("cannot attach the batch's cookie jar");
  }
  return absl::OkStatus();
}

absl::Status CookieJar::AttachStore(const core::CookieStore* store,
                                    CURL* easy) {
  if (store == nullptr) return absl::OkStatus();
  const auto* jar = dynamic_cast<const CookieJar*>(store);
  if (jar == nullptr) {
    return absl::InternalError("the job's cookie store is not a CookieJar");
  }
  return jar->Attach(easy);
}

void CookieJar::Detach(CURL* easy) {
  // Drop the cookie-file list CURLOPT_COOKIEFILE "" made: libcurl 7.88's
  // curl_easy_reset forgets it without freeing it (17 bytes a transfer,
  // found by LeakSanitizer). With the share still attached this leaves the
  // shared cookies alone.
  curl_easy_setopt(easy, CURLOPT_COOKIEFILE, static_cast<char*>(nullptr));
  curl_easy_setopt(easy, CURLOPT_SHARE, nullptr);
}

void CookieJar::Lock(CURL* /*easy*/, curl_lock_data data,
                     curl_lock_access /*access*/, void* self) {
  auto* jar = static_cast<CookieJar*>(self);
  if (data >= 0 && data < CURL_LOCK_DATA_LAST) {
    jar->locks_[data].Lock();
  }
}

void CookieJar::Unlock(CURL* /*easy*/, curl_lock_data data, void* self) {
  auto* jar = static_cast<CookieJar*>(self);
  if (data >= 0 && data < CURL_LOCK_DATA_LAST) {
    jar->locks_[data].Unlock();
  }
}

}  // namespace fetchd::transport
