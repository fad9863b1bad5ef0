// Transfer: one attempt of one FetchJob on a curl easy handle. It configures
// the handle from the job, collects the response (headers, body under the
// decoded-bytes cap) through libcurl callbacks, and turns the finished
// attempt into a FetchResult plus the facts the retry policy needs.
//
// Thread-safety: none; owned by the curl worker that runs it. The callbacks
// run on that worker's thread inside curl_multi_perform.
#ifndef FETCHD_SERVICE_TRANSPORT_CURL_TRANSFER_H_
#define FETCHD_SERVICE_TRANSPORT_CURL_TRANSFER_H_

#include <curl/curl.h>

#include <memory>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "fetch/v1/fetch.pb.h"
#include "service/common/clock.h"
#include "service/core/fetch_job.h"
#include "service/core/retry_policy.h"
#include "service/transport/curl_handles.h"

namespace fetchd::transport {

class Transfer {
 public:
  // Why fetchd itself stopped the transfer, if it did.
  enum class Abort { kNone, kBodyTooLarge, kReadIdle, kCancelled };

  // Takes the job and an easy handle (fresh or reset).
  Transfer(std::unique_ptr<core::FetchJob> job, CurlEasyPtr easy,
           const Clock* clock);
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;

  // Configures the handle for the next attempt starting at `now`; the total
  // timeout is cut to what is left before the batch deadline. On error the
  // handle must not be added to a multi.
  absl::Status Start(absl::Time now);

  // When the read-idle timeout fires if no byte arrives before then; only
  // meaningful once connected (InfiniteFuture before).
  absl::Time IdleDeadline() const;
  // Marks the attempt as stopped by fetchd; Finish() reports `why`.
  void set_abort(Abort why) { abort_ = why; }

  // Fills the result from the finished attempt (curl `code`, or an abort)
  // and returns what the retry policy needs. Call once per attempt, after
  // the handle left the multi.
  core::AttemptOutcome Finish(CURLcode code);

  CURL* easy() const { return easy_.get(); }
  core::FetchJob& job() { return *job_; }
  std::unique_ptr<core::FetchJob> TakeJob() { return std::move(job_); }
  CurlEasyPtr TakeEasy() { return std::move(easy_); }
  fetch::v1::FetchResult& result() { return result_; }

 private:
  static size_t OnBody(char* data, size_t size, size_t count, void* self);
  static size_t OnHeader(char* data, size_t size, size_t count, void* self);
  static int OnPrereq(void* self, char* primary_ip, char* local_ip,
                      int primary_port, int local_port);
  void FillTransferInfo();
  void SetError(fetch::v1::ErrorKind kind, std::string message);

  std::unique_ptr<core::FetchJob> job_;
  CurlEasyPtr easy_;
  const Clock* const clock_;
  CurlSlistPtr request_headers_;
  fetch::v1::FetchResult result_;
  char error_buffer_[CURL_ERROR_SIZE] = {};
  absl::Time started_ = absl::InfinitePast();
  absl::Time last_activity_ = absl::InfinitePast();
  absl::Duration attempt_timeout_;
  bool connected_ = false;
  Abort abort_ = Abort::kNone;
};

}  // namespace fetchd::transport

#endif  // FETCHD_SERVICE_TRANSPORT_CURL_TRANSFER_H_
