// CookieStore: the cookies of one call (aiohttp's ClientSession cookie jar),
// as core sees them: an opaque handle that every job of the call shares.
// The Fetcher that runs the jobs creates it (Fetcher::NewCookieStore) and is
// the only one that looks inside; core and api only pass it along.
//
// Thread-safety: the implementation's (jobs of one call run on several
// workers at once).
#ifndef FETCHD_SERVICE_CORE_COOKIE_STORE_H_
#define FETCHD_SERVICE_CORE_COOKIE_STORE_H_

namespace fetchd::core {

class CookieStore {
 public:
  virtual ~CookieStore() = default;

 protected:
  CookieStore() = default;
  CookieStore(const CookieStore&) = delete;
  CookieStore& operator=(const CookieStore&) = delete;
};

}  // namespace fetchd::core

#endif  // FETCHD_SERVICE_CORE_COOKIE_STORE_H_
