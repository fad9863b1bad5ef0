#include "service/transport/streamed_body.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"
#include "service/core/redirect_rules.h"
#include "service/core/retry_policy.h"

namespace fetchd::transport {
namespace {

// Sends the first job.chunk_bytes of `data` (or all of it, if shorter) as
// the job's next BodyChunk; returns how many bytes it sent.
size_t SendChunk(core::FetchJob& job, absl::string_view data) {
  const size_t take = std::min<size_t>(job.chunk_bytes, data.size());
  fetch::v1::BodyChunk out;
  out.set_index(job.index);
  out.set_offset(job.streamed_bytes);
  out.set_data(data.data(), take);
  job.streamed_bytes += take;
  job.batch->SendChunk(std::move(out));
  return take;
}

}  // namespace

StreamedBody::Mode StreamedBody::Decide(const core::FetchJob& job,
                                        uint32_t status, bool has_location) {
  if (job.follow_redirects && has_location && core::IsRedirectStatus(status)) {
    return Mode::kRedirect;
  }
  // A response the retry policy may replace: hold it back while it is
  // small, so that the caller sees only the final one.
  const fetch::v1::ErrorKind error = job.fail_on_http_error && status >= 400
                                         ? fetch::v1::ERROR_KIND_HTTP_STATUS
                                         : fetch::v1::ERROR_KIND_NONE;
  if (job.attempts < job.retry.max_attempts &&
      core::RetryableReason(job.retry, error, status).has_value()) {
    return Mode::kHold;
  }
  return Mode::kStream;
}

void StreamedBody::Reset() {
  mode_ = Mode::kUndecided;
  pending_.clear();
  paused_ = false;
  partial_listed_ = false;
}

size_t StreamedBody::Take(const char* data, size_t n, core::FetchJob& job,
                          CURL* easy, Mode mode, HeadSource head) {
  const size_t chunk = job.chunk_bytes;
  if (mode_ == Mode::kUndecided) mode_ = mode;
  switch (mode_) {
    case Mode::kRedirect:
      // Never shown unless the redirect can't be followed; one chunk is
      // plenty for that.
      pending_.append(data,
                      std::min(n, chunk - std::min(chunk, pending_.size())));
      return n;
    case Mode::kHold:
      if (pending_.size() + n <= chunk) {
        pending_.append(data, n);
        return n;
      }
      // Too long to hold: stream it, and give up retrying this request.
      mode_ = Mode::kStream;
      break;
    case Mode::kStream:
    case Mode::kUndecided:
      break;
  }
  // Everything taken goes to the batch soon (SendPartial), so it all needs
  // room: the batch then holds at most its bound plus less than a chunk and
  // one write per transfer.
  if (!job.batch->StreamHasRoom(worker_index_)) {
    paused_ = true;
    if (paused_list_ != nullptr) paused_list_->push_back(easy);
    // curl keeps `data` and hands it over again once unpaused.
    return CURL_WRITEFUNC_PAUSE;
  }
  pending_.append(data, n);
  Send(job, /*last=*/false, head);
  if (!pending_.empty() && !partial_listed_ && partial_list_ != nullptr) {
    partial_listed_ = true;
    partial_list_->push_back(easy);
  }
  return n;
}

void StreamedBody::SendPartial(core::FetchJob& job, HeadSource head) {
  partial_listed_ = false;
  if (mode_ == Mode::kStream && !pending_.empty()) {
    Send(job, /*last=*/true, head);
  }
}

void StreamedBody::Send(core::FetchJob& job, bool last, HeadSource head) {
  if (!job.head_sent) {
    fetch::v1::FetchResult head_of = head();
    SendHeldBody(job, head_of);  // the head only: head_of has no body
  }
  const size_t chunk = job.chunk_bytes;
  size_t sent = 0;
  while (pending_.size() - sent >= chunk || (last && sent < pending_.size())) {
    sent += SendChunk(job, absl::string_view(pending_).substr(sent));
  }
  pending_.erase(0, sent);
}

std::string StreamedBody::Finish(core::FetchJob& job, HeadSource head) {
  if (mode_ == Mode::kStream) {
    Send(job, /*last=*/true, head);
    return std::string();
  }
  // Held (or empty): the worker sends it if this result is final.
  std::string held;
  held.swap(pending_);
  return held;
}

void SendHeldBody(core::FetchJob& job, fetch::v1::FetchResult& result) {
  if (!job.stream_body) return;
  if (!job.head_sent) {
    if (result.status() == 0) return;  // no response: the result says why
    fetch::v1::BodyHead head;
    head.set_id(job.id);
    head.set_index(job.index);
    head.set_status(result.status());
    *head.mutable_headers() = result.headers();
    head.set_final_url(result.final_url().empty() ? job.url
                                                  : result.final_url());
    head.set_http_version(result.http_version());
    bool encoded = false;
    std::optional<uint64_t> length;
    for (const fetch::v1::Header& h : result.headers()) {
      uint64_t value = 0;
      if (absl::EqualsIgnoreCase(h.name(), "content-encoding") &&
          !absl::EqualsIgnoreCase(h.value(), "identity")) {
        encoded = true;
      } else if (absl::EqualsIgnoreCase(h.name(), "content-length") &&
                 absl::SimpleAtoi(h.value(), &value)) {
        length = value;
      }
    }
    if (length.has_value() && (!encoded || !job.decompress)) {
      head.set_content_length(*length);
    }
    job.head_sent = true;
    job.batch->SendHead(std::move(head));
  }
  const std::string& body = result.body();
  for (size_t sent = 0; sent < body.size();) {
    sent += SendChunk(job, absl::string_view(body).substr(sent));
  }
  result.clear_body();
}

}  // namespace fetchd::transport
