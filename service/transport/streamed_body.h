// StreamedBody: the body of a streamed job (FetchJob.stream_body) while its
// transfer runs. At the first body byte it decides what the bytes are for:
//  - kStream: the final response: sent to the batch as a BodyHead and
//    BodyChunks of job.chunk_bytes as it arrives. When the batch has no
//    room (Batch::StreamHasRoom) the transfer pauses (CURL_WRITEFUNC_PAUSE)
//    and is listed in the worker's paused list; the worker resumes it once
//    the batch drained. Bytes short of a chunk wait for SendPartial();
//  - kHold: a status the retry policy may retry: held up to one chunk (so
//    a retry can still replace it), then streamed (and the request no
//    longer retried, its head having gone out);
//  - kRedirect: a redirect that will be followed: one chunk kept (shown
//    only if the hop can't be followed), the rest dropped.
// What is held at the end goes into the result's body, for the worker to
// send with SendHeldBody() if the result is final.
//
// Thread-safety: none; owned by one transfer on its worker's thread.
#ifndef FETCHD_SERVICE_TRANSPORT_STREAMED_BODY_H_
#define FETCHD_SERVICE_TRANSPORT_STREAMED_BODY_H_

#include <curl/curl.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "fetch/v1/fetch.pb.h"
#include "service/core/fetch_job.h"

namespace fetchd::transport {

class StreamedBody {
 public:
  enum class Mode { kUndecided, kStream, kHold, kRedirect };

  // The mode of a response to `job` with HTTP `status` (`has_location`:
  // it has a Location header), decided at its first body byte. Pure.
  [[nodiscard]] static Mode Decide(const core::FetchJob& job, uint32_t status,
                                   bool has_location);

  // The head facts of the response as they are now (status, headers, final
  // URL...): the transfer's result without a body.
  using HeadSource = absl::FunctionRef<fetch::v1::FetchResult()>;

  // Where a paused transfer lists its easy handle, where one holding less
  // than a chunk lists it (see SendPartial), and the index of the worker
  // that owns it (for Batch::StreamHasRoom). The lists outlive the body.
  void set_worker_lists(std::vector<CURL*>* paused, std::vector<CURL*>* partial,
                        int worker_index) {
    paused_list_ = paused;
    partial_list_ = partial;
    worker_index_ = worker_index;
  }

  // Clears the state for a new attempt.
  void Reset();
  // Takes `n` bytes of `job`'s response on `easy`: returns n (all taken)
  // or CURL_WRITEFUNC_PAUSE (none; curl hands them over again once
  // resumed). `mode` is used when the body is still undecided.
  size_t Take(const char* data, size_t n, core::FetchJob& job, CURL* easy,
              Mode mode, HeadSource head);
  // Sends the bytes held back for want of a full chunk (kStream only), so
  // that a slow response reaches the caller without waiting for a chunk's
  // worth.
  void SendPartial(core::FetchJob& job, HeadSource head);
  // At the end of the attempt: sends the last partial chunk of a kStream
  // body; returns the held body of the other modes (empty for kStream).
  [[nodiscard]] std::string Finish(core::FetchJob& job, HeadSource head);

  bool paused() const { return paused_; }
  // The worker is about to unpause the transfer.
  void clear_paused() { paused_ = false; }

 private:
  // Sends the head, and pending_ in full chunks (all of it when `last`).
  void Send(core::FetchJob& job, bool last, HeadSource head);

  Mode mode_ = Mode::kUndecided;
  // Bytes not yet sent (less than one chunk), or the held body.
  std::string pending_;
  bool paused_ = false;
  bool partial_listed_ = false;
  std::vector<CURL*>* paused_list_ = nullptr;
  std::vector<CURL*>* partial_list_ = nullptr;
  int worker_index_ = 0;
};

// Streamed jobs: sends what `result` (about to be delivered as final) holds
// of the response and has not been streamed: the BodyHead when a response
// was received and none was sent, then its body as chunks; the body is
// removed from the result. Nothing for other jobs.
void SendHeldBody(core::FetchJob& job, fetch::v1::FetchResult& result);

}  // namespace fetchd::transport

#endif  // FETCHD_SERVICE_TRANSPORT_STREAMED_BODY_H_
