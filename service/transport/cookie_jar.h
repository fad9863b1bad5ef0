// CookieJar: the cookies of one batch (aiohttp's ClientSession cookie jar),
// the transport's core::CookieStore (WorkerPool::NewCookieStore makes them),
// kept in a curl share handle that every transfer of the batch attaches to,
// whichever worker runs it. Cookies a response sets are sent by the
// batch's transfers that start later, by curl's cookie engine (domain, path,
// expiry and Secure rules); cookies given without a domain go to every
// request of the batch.
//
// Thread-safety: Attach/Detach run on the worker threads; curl serializes
// the share through the lock callbacks, one mutex per kind of shared data.
// The jar must outlive every easy handle attached to it: jobs hold it, and
// workers detach an easy handle before reusing it.
#ifndef FETCHD_SERVICE_TRANSPORT_COOKIE_JAR_H_
#define FETCHD_SERVICE_TRANSPORT_COOKIE_JAR_H_

#include <curl/curl.h>

#include <array>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "fetch/v1/fetch.pb.h"
#include "google/protobuf/repeated_ptr_field.h"
#include "service/core/cookie_store.h"

namespace fetchd::transport {

class CookieJar final : public core::CookieStore {
 public:
  // Errors (InvalidArgument, naming `field`[i]): a cookie without a name,
  // or a name or value with characters a Cookie header can't carry
  // (CTLs, ';', ',', whitespace in the name, '"'...), a domain or path
  // with such characters.
  static absl::StatusOr<std::shared_ptr<CookieJar>> Create(
      const google::protobuf::RepeatedPtrField<fetch::v1::Cookie>& initial,
      absl::string_view field);
  ~CookieJar() override;

  // Makes `easy` use the jar for its next transfer.
  absl::Status Attach(CURL* easy) const;
  // Attach() for the store of a job: `store` was made by
  // WorkerPool::NewCookieStore, so it is a CookieJar; null attaches nothing.
  static absl::Status AttachStore(const core::CookieStore* store, CURL* easy);
  // Before `easy` is reset or reused outside the jar's batch.
  static void Detach(CURL* easy);

 private:
  CookieJar() = default;
  // curl's share lock callbacks: Lock returns holding a mutex that Unlock,
  // a later call, releases, which the thread-safety analysis can't follow.
  static void Lock(CURL* easy, curl_lock_data data, curl_lock_access access,
                   void* self) ABSL_NO_THREAD_SAFETY_ANALYSIS;
  static void Unlock(CURL* easy, curl_lock_data data,
                     void* self) ABSL_NO_THREAD_SAFETY_ANALYSIS;

  CURLSH* share_ = nullptr;
  // "a=1; b=2": the cookies given without a domain.
  std::string unscoped_;
  // One per curl_lock_data; curl pairs each Lock with an Unlock.
  mutable std::array<absl::Mutex, CURL_LOCK_DATA_LAST> locks_;
};

}  // namespace fetchd::transport

#endif  // FETCHD_SERVICE_TRANSPORT_COOKIE_JAR_H_
