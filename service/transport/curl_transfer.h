// Transfer: one attempt of one FetchJob on a curl easy handle. It configures
// the handle from the job, collects the response (headers, body under the
// decoded-bytes cap) through libcurl callbacks, and turns the finished
// attempt into a FetchResult plus the facts the retry policy needs.
//
// Streamed bodies (job.stream_body): the final response's body goes to the
// batch as a BodyHead and BodyChunks of job.chunk_bytes while it arrives.
// When the batch has no room (Batch::StreamHasRoom) the write callback
// pauses the transfer (CURL_WRITEFUNC_PAUSE) and lists it in the worker's
// paused list; the worker calls Resume() once the batch has drained. The
// body of a redirect that will be followed is not streamed (one chunk is
// kept, the rest dropped), and that of a status that may be retried is held
// back up to one chunk; both are in result().body after Finish(), for the
// worker to send with SendHeldBody() if the result is final.
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
#include "service/policy/address_policy.h"
#include "service/transport/curl_handles.h"

namespace fetchd::transport {

// Server-wide connection settings every transfer applies
// (fetch.v1.Transport).
struct TransferSettings {
  absl::Duration dns_cache_ttl = absl::Seconds(60);
  absl::Duration happy_eyeballs_delay = absl::Milliseconds(200);
  // CURL_IPRESOLVE_WHATEVER, _V4 or _V6.
  long ip_resolve = CURL_IPRESOLVE_WHATEVER;  // NOLINT(google-runtime-int)
  absl::Duration idle_connection_timeout = absl::Seconds(118);
  // Zero: no limit.
  absl::Duration max_connection_lifetime;
  // The proxy of requests that don't name one; empty: none.
  std::string proxy_url;
  std::string proxy_username;
  std::string proxy_password;
  // With no proxy at all, let curl read http_proxy/https_proxy/no_proxy.
  bool use_env_proxy = false;
};

class Transfer {
 public:
  // Why fetchd itself stopped the transfer, if it did.
  enum class Abort {
    kNone,
    kBodyTooLarge,
    kHeadersTooLarge,
    kReadIdle,
    kCancelled
  };

  // Takes the job and an easy handle (fresh or reset). Every address the
  // transfer connects to, or reuses a connection to, must pass `policy`
  // (null: no destination checks, for engine tests only); it must outlive
  // the transfer.
  Transfer(std::unique_ptr<core::FetchJob> job, CurlEasyPtr easy,
           const Clock* clock, const policy::AddressPolicy* policy,
           const TransferSettings* settings = nullptr);
  Transfer(const Transfer&) = delete;
  Transfer& operator=(const Transfer&) = delete;

  // Configures the handle for the next attempt starting at `now`; the total
  // timeout is cut to what is left before the batch deadline. On error the
  // handle must not be added to a multi.
  absl::Status Start(absl::Time now);

  // Where a paused transfer lists its easy handle, where a transfer holding
  // less than a chunk of streamed body lists it (see SendPartial), and the
  // index of the worker that owns it (for Batch::StreamHasRoom). Set before
  // Start() by a worker that streams bodies; the lists outlive the
  // transfer.
  void set_worker_lists(std::vector<CURL*>* paused, std::vector<CURL*>* partial,
                        int worker_index) {
    paused_list_ = paused;
    partial_list_ = partial;
    worker_index_ = worker_index;
  }
  // Sends the streamed body bytes held back for want of a full chunk, so
  // that a slow response reaches the caller without waiting for a chunk's
  // worth (the worker calls it once per loop, after curl has read what
  // there was).
  void SendPartial();
  // Paused for room in the batch's stream.
  bool paused() const { return paused_; }
  // Unpauses a paused transfer (curl may call the write callback, and
  // pause it again, before this returns). Worker thread, outside callbacks.
  absl::Status Resume(absl::Time now);

  // When the read-idle timeout fires if no byte arrives before then; only
  // meaningful once connected and not paused (InfiniteFuture otherwise).
  absl::Time IdleDeadline() const;
  // Marks the attempt as stopped by fetchd; Finish() reports `why`.
  void set_abort(Abort why) { abort_ = why; }

  // Fills the result from the finished attempt (curl `code`, or an abort)
  // and returns what the retry policy needs. Call once per attempt, after
  // the handle left the multi.
  core::AttemptOutcome Finish(CURLcode code);

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
  std::unique_ptr<core::FetchJob> TakeJob() { return std::move(job_); }
  // Detaches the multipart body from the handle before handing it over.
  CurlEasyPtr TakeEasy();
  fetch::v1::FetchResult& result() { return result_; }

 private:
  // What happens to the body of a streamed job's response, decided at its
  // first byte.
  enum class BodyMode {
    kUndecided,
    // The final response: sent to the batch as it arrives.
    kStream,
    // A status the retry policy may retry: held up to one chunk, then
    // streamed (and the request no longer retried).
    kHold,
    // A redirect that will be followed: one chunk kept, the rest dropped.
    kRedirect,
  };

  static size_t OnBody(char* data, size_t size, size_t count, void* self);
  static size_t OnHeader(char* data, size_t size, size_t count, void* self);
  static int OnPrereq(void* self, char* primary_ip, char* local_ip,
                      int primary_port, int local_port);
  static curl_socket_t OnOpenSocket(void* self, curlsocktype purpose,
                                    curl_sockaddr* address);
  // Checks the address about to be used; records a refusal.
  bool Permit(const policy::IpAddress& addr, uint16_t port);
  // Sets the method and the body (raw bytes or multipart) from the job;
  // part of Start().
  absl::Status ApplyBody();
  void FillTransferInfo();
  // TLS, proxy, HTTP version, pins, cookies and the server's connection
  // settings.
  absl::Status ApplyConnectionOptions();
  // OnBody for a streamed job: `data` consumed (n), or CURL_WRITEFUNC_PAUSE.
  size_t OnStreamedBody(const char* data, size_t n);
  BodyMode DecideBodyMode();
  // Sends the head, and pending_ in full chunks (all of it when `last`).
  void SendStreamed(bool last);
  // Clears the body state for a new attempt.
  void ResetBody();
  // At the end of the attempt: the last partial chunk of a streamed body, or
  // the held body into the result.
  void FinishBody();
  void SetError(fetch::v1::ErrorKind kind, std::string message);

  std::unique_ptr<core::FetchJob> job_;
  // Before easy_, so that a handle still held is cleaned up (and lets go
  // of the mime) before the mime is freed.
  CurlMimePtr mime_;
  CurlEasyPtr easy_;
  const Clock* const clock_;
  const policy::AddressPolicy* const policy_;  // may be null
  const TransferSettings* const settings_;     // may be null: defaults
  CurlSlistPtr request_headers_;
  CurlSlistPtr connect_to_;
  fetch::v1::FetchResult result_;
  char error_buffer_[CURL_ERROR_SIZE] = {};
  absl::Time started_ = absl::InfinitePast();
  absl::Time last_activity_ = absl::InfinitePast();
  absl::Duration attempt_timeout_;
  bool connected_ = false;
  Abort abort_ = Abort::kNone;
  uint64_t header_bytes_ = 0;
  // Body bytes this attempt took (decoded unless decompress is off).
  uint64_t body_bytes_ = 0;
  // The response has a Location header.
  bool has_location_ = false;
  BodyMode body_mode_ = BodyMode::kUndecided;
  // Streamed body bytes not yet sent (less than one chunk), or the held
  // body.
  std::string pending_;
  bool paused_ = false;
  std::vector<CURL*>* paused_list_ = nullptr;
  std::vector<CURL*>* partial_list_ = nullptr;
  bool partial_listed_ = false;
  int worker_index_ = 0;
  // The first address the policy refused in this attempt, and why.
  std::optional<std::string> denied_address_;
  policy::Decision denial_;
  std::optional<std::string> denied_category_;
  std::optional<std::string> redirect_url_;
};

// Streamed jobs: sends what `result` (about to be delivered as final) holds
// of the response and has not been streamed: the BodyHead when a response
// was received and none was sent, then its body as chunks; the body is
// removed from the result. Nothing for other jobs.
void SendHeldBody(core::FetchJob& job, fetch::v1::FetchResult& result);

}  // namespace fetchd::transport

#endif  // FETCHD_SERVICE_TRANSPORT_CURL_TRANSFER_H_
