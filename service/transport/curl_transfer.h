// Transfer: one attempt of one FetchJob on a curl easy handle, and the glue
// between libcurl's callbacks and the pieces that do the work:
// easy_setup.h configures the handle, connect_guard.h applies the
// destination policy at connect time, response_collector.h collects the
// headers and transfer facts, streamed_body.h runs a streamed body, and
// attempt_outcome.h turns the finished attempt into an error kind and
// message. The transfer keeps an inline body under the decoded-bytes cap,
// the read-idle clock, and the redirect target.
//
// Thread-safety: none; owned by the curl worker that runs it. The callbacks
// run on that worker's thread inside curl_multi_perform (or inside
// curl_easy_pause, for Resume()).
#ifndef FETCHD_SERVICE_TRANSPORT_CURL_TRANSFER_H_
#define FETCHD_SERVICE_TRANSPORT_CURL_TRANSFER_H_

#include <curl/curl.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "fetch/v1/fetch.pb.h"
#include "service/common/clock.h"
#include "service/core/fetch_job.h"
#include "service/core/retry_policy.h"
#include "service/policy/destination_gate.h"
#include "service/transport/attempt_outcome.h"
#include "service/transport/connect_guard.h"
#include "service/transport/curl_handles.h"
#include "service/transport/easy_setup.h"
#include "service/transport/response_collector.h"
#include "service/transport/streamed_body.h"

namespace fetchd::transport {

class Transfer {
 public:
  using Abort = transport::Abort;

  // Takes the job and an easy handle (fresh or reset). Every address the
  // transfer connects to, or reuses a connection to, must pass `policy`
  // (null: no destination checks, for engine tests only); it must outlive
  // the transfer.
  Transfer(std::unique_ptr<core::FetchJob> job, CurlEasyPtr easy,
           const Clock* clock, const policy::DestinationGate* destinations,
           const TransferSettings* settings = nullptr);
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;

  // Configures the handle for the next attempt starting at `now`; the total
  // timeout is cut to what is left before the batch deadline. On error the
  // handle must not be added to a multi.
  [[nodiscard]] absl::Status Start(absl::Time now);

  // Where a paused transfer lists its easy handle, where a transfer holding
  // less than a chunk of streamed body lists it (see SendPartial), and the
  // index of the worker that owns it (for Batch::StreamHasRoom). Set before
  // Start() by a worker that streams bodies; the lists outlive the
  // transfer.
  void set_worker_lists(std::vector<CURL*>* paused, std::vector<CURL*>* partial,
                        int worker_index) {
    streamed_.set_worker_lists(paused, partial, worker_index);
  }
  // Sends the streamed body bytes held back for want of a full chunk, so
  // that a slow response reaches the caller without waiting for a chunk's
  // worth (the worker calls it once per loop, after curl has read what
  // there was).
  void SendPartial();
  // Paused for room in the batch's stream.
  bool paused() const { return streamed_.paused(); }
  // Unpauses a paused transfer (curl may call the write callback, and
  // pause it again, before this returns). Worker thread, outside callbacks.
  [[nodiscard]] absl::Status Resume(absl::Time now);

  // When the read-idle timeout fires if no byte arrives before then; only
  // meaningful once connected and not paused (InfiniteFuture otherwise).
  absl::Time IdleDeadline() const;
  // Marks the attempt as stopped by fetchd; Finish() reports `why`.
  void set_abort(Abort why) { abort_ = why; }

  // Fills the result from the finished attempt (curl `code`, or an abort)
  // and returns what the retry policy needs. Call once per attempt, after
  // the handle left the multi.
  [[nodiscard]] core::AttemptOutcome Finish(CURLcode code);

  // After Finish(): the absolute URL of the redirect to follow, when the
  // response was a 301/302/303/307/308 with a Location and the job follows
  // redirects. The result then holds that 3xx response.
  const std::optional<std::string>& redirect_url() const {
    return redirect_url_;
  }
  // After Finish(): the category of the policy rule that refused the
  // address of this attempt (the result's error is DENIED), if one did.
  const std::optional<std::string>& denied_category() const {
    return denied_category_;
  }

  CURL* easy() const { return easy_.get(); }
  // When the current attempt started.
  absl::Time started() const { return started_; }
  core::FetchJob& job() { return *job_; }
  [[nodiscard]] std::unique_ptr<core::FetchJob> TakeJob() {
    return std::move(job_);
  }
  // Detaches the multipart body from the handle before handing it over.
  [[nodiscard]] CurlEasyPtr TakeEasy();
  fetch::v1::FetchResult& result() { return result_; }

 private:
  static size_t OnBody(char* data, size_t size, size_t count, void* self);
  static size_t OnHeader(char* data, size_t size, size_t count, void* self);
  static int OnPrereq(void* self, char* primary_ip, char* local_ip,
                      int primary_port, int local_port);
  static curl_socket_t OnOpenSocket(void* self, curlsocktype purpose,
                                    curl_sockaddr* address);
  // The callbacks, their data and the error buffer; part of Start().
  absl::Status SetCallbacks();
  // The result with curl's transfer facts filled in (for a streamed head).
  fetch::v1::FetchResult Head();
  // The classifier's inputs for this attempt ending with `code`.
  AttemptFacts Facts(CURLcode code) const;
  // The redirect target of a finished attempt, when it is one to follow.
  void FindRedirect();

  std::unique_ptr<core::FetchJob> job_;
  // Before easy_, so that a handle still held is cleaned up (and lets go
  // of the mime and lists) before they are freed.
  RequestMemory memory_;
  CurlEasyPtr easy_;
  const Clock* const clock_;
  const TransferSettings* const settings_;  // may be null: defaults
  ConnectGuard guard_;
  fetch::v1::FetchResult result_;
  char error_buffer_[CURL_ERROR_SIZE] = {};
  absl::Time started_ = absl::InfinitePast();
  absl::Time last_activity_ = absl::InfinitePast();
  absl::Duration attempt_timeout_;
  bool connected_ = false;
  Abort abort_ = Abort::kNone;
  ResponseHeaderState headers_;
  // Body bytes this attempt took (decoded unless decompress is off).
  uint64_t body_bytes_ = 0;
  StreamedBody streamed_;
  std::optional<std::string> denied_category_;
  std::optional<std::string> redirect_url_;
};

}  // namespace fetchd::transport

#endif  // FETCHD_SERVICE_TRANSPORT_CURL_TRANSFER_H_
