#include "service/transport/curl_transfer.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "service/common/status_macros.h"
#include "service/core/redirect_rules.h"

namespace fetchd::transport {

Transfer::Transfer(std::unique_ptr<core::FetchJob> job, CurlEasyPtr easy,
                   const Clock* clock,
                   const policy::DestinationGate* destinations,
                   const TransferSettings* settings)
    : job_(std::move(job)),
      easy_(std::move(easy)),
      clock_(clock),
      settings_(settings),
      guard_(destinations) {}

absl::Status Transfer::Start(absl::Time now) {
  static const TransferSettings kDefaults;
  result_.Clear();
  error_buffer_[0] = '\0';
  started_ = now;
  last_activity_ = now;
  connected_ = false;
  abort_ = Abort::kNone;
  headers_ = ResponseHeaderState();
  body_bytes_ = 0;
  streamed_.Reset();
  guard_.Reset();
  denied_category_.reset();
  redirect_url_.reset();
  attempt_timeout_ =
      std::min(job_->total_timeout, job_->batch->deadline() - now);
  FETCHD_RETURN_IF_ERROR(SetCallbacks());
  return SetUpRequest(easy_.get(), *job_, attempt_timeout_,
                      settings_ != nullptr ? *settings_ : kDefaults, memory_);
}

absl::Status Transfer::SetCallbacks() {
  void* self = static_cast<void*>(this);
  CurlOptions opts(easy_.get());
  opts.Set(CURLOPT_PRIVATE, self)
      .Set(CURLOPT_ERRORBUFFER, error_buffer_)
      .Set(CURLOPT_WRITEFUNCTION, &Transfer::OnBody)
      .Set(CURLOPT_WRITEDATA, self)
      .Set(CURLOPT_HEADERFUNCTION, &Transfer::OnHeader)
      .Set(CURLOPT_HEADERDATA, self)
      .Set(CURLOPT_PREREQFUNCTION, &Transfer::OnPrereq)
      .Set(CURLOPT_PREREQDATA, self)
      .Set(CURLOPT_OPENSOCKETFUNCTION, &Transfer::OnOpenSocket)
      .Set(CURLOPT_OPENSOCKETDATA, self);
  return opts.status();
}

CurlEasyPtr Transfer::TakeEasy() {
  if (memory_.mime != nullptr && easy_ != nullptr) {
    // curl_easy_reset() of the recycled handle would touch the mime.
    curl_easy_setopt(easy_.get(), CURLOPT_MIMEPOST, nullptr);
  }
  return std::move(easy_);
}

absl::Time Transfer::IdleDeadline() const {
  if (!connected_ || paused()) return absl::InfiniteFuture();
  return last_activity_ + job_->read_idle_timeout;
}

fetch::v1::FetchResult Transfer::Head() {
  CollectTransferInfo(easy_.get(), connected_, body_bytes_, result_);
  return result_;
}

size_t Transfer::OnBody(char* data, size_t size, size_t count, void* self) {
  auto* t = static_cast<Transfer*>(self);
  const size_t n = size * count;
  if (t->body_bytes_ + n > t->job_->max_body_bytes) {
    t->abort_ = Abort::kBodyTooLarge;
    return 0;  // Short count: curl aborts with CURLE_WRITE_ERROR.
  }
  t->last_activity_ = t->clock_->Now();
  if (!t->job_->stream_body) {
    t->result_.mutable_body()->append(data, n);
    t->body_bytes_ += n;
    return n;
  }
  long status = 0;  // NOLINT(google-runtime-int): curl's type.
  curl_easy_getinfo(t->easy_.get(), CURLINFO_RESPONSE_CODE, &status);
  const StreamedBody::Mode mode = StreamedBody::Decide(
      *t->job_, static_cast<uint32_t>(status), t->headers_.has_location);
  const size_t taken = t->streamed_.Take(data, n, *t->job_, t->easy_.get(),
                                         mode, [t] { return t->Head(); });
  if (taken != CURL_WRITEFUNC_PAUSE) t->body_bytes_ += n;
  return taken;
}

size_t Transfer::OnHeader(char* data, size_t size, size_t count, void* self) {
  auto* t = static_cast<Transfer*>(self);
  const size_t n = size * count;
  t->last_activity_ = t->clock_->Now();
  if (!CollectHeaderLine(absl::string_view(data, n), *t->job_, t->headers_,
                         t->result_)) {
    t->abort_ = Abort::kHeadersTooLarge;
    return 0;  // Short count: curl aborts with CURLE_WRITE_ERROR.
  }
  return n;
}

curl_socket_t Transfer::OnOpenSocket(void* self, curlsocktype /*purpose*/,
                                     curl_sockaddr* address) {
  return static_cast<Transfer*>(self)->guard_.OpenSocket(*address);
}

int Transfer::OnPrereq(void* self, char* primary_ip, char* /*local_ip*/,
                       int primary_port, int /*local_port*/) {
  auto* t = static_cast<Transfer*>(self);
  t->connected_ = true;
  t->last_activity_ = t->clock_->Now();
  return t->guard_.PermitRequest(primary_ip, primary_port)
             ? CURL_PREREQFUNC_OK
             : CURL_PREREQFUNC_ABORT;
}

void Transfer::SendPartial() {
  streamed_.SendPartial(*job_, [this] { return Head(); });
}

absl::Status Transfer::Resume(absl::Time now) {
  if (!paused()) return absl::OkStatus();
  streamed_.clear_paused();
  last_activity_ = now;
  // May call OnBody (and pause again) before it returns.
  const CURLcode code = curl_easy_pause(easy_.get(), CURLPAUSE_CONT);
  if (code != CURLE_OK) {
    return absl::InternalError(
        absl::StrCat("curl_easy_pause: ", curl_easy_strerror(code)));
  }
  return absl::OkStatus();
}

AttemptFacts Transfer::Facts(CURLcode code) const {
  AttemptFacts facts;
  facts.code = code;
  facts.abort = abort_;
  facts.curl_detail =
      error_buffer_[0] != '\0' ? error_buffer_ : curl_easy_strerror(code);
  facts.connected = connected_;
  facts.status = result_.status();
  facts.fail_on_http_error = job_->fail_on_http_error;
  if (guard_.denial().has_value()) facts.denial = guard_.denial()->message;
  facts.attempt_timeout = attempt_timeout_;
  facts.total_timeout = job_->total_timeout;
  facts.connect_timeout = job_->connect_timeout;
  facts.read_idle_timeout = job_->read_idle_timeout;
  facts.max_body_bytes = job_->max_body_bytes;
  facts.max_response_header_bytes = job_->max_response_header_bytes;
  return facts;
}

void Transfer::FindRedirect() {
  char* location = nullptr;
  if (result_.error() == fetch::v1::ERROR_KIND_NONE && job_->follow_redirects &&
      core::IsRedirectStatus(result_.status()) &&
      curl_easy_getinfo(easy_.get(), CURLINFO_REDIRECT_URL, &location) ==
          CURLE_OK &&
      location != nullptr) {
    redirect_url_ = location;
  }
}

core::AttemptOutcome Transfer::Finish(CURLcode code) {
  CollectTransferInfo(easy_.get(), connected_, body_bytes_, result_);
  if (job_->stream_body) {
    *result_.mutable_body() =
        streamed_.Finish(*job_, [this] { return Head(); });
  }
  ClassifiedOutcome classified = ClassifyAttempt(Facts(code));
  if (classified.error != fetch::v1::ERROR_KIND_NONE) {
    result_.set_error(classified.error);
    result_.set_error_message(std::move(classified.message));
  }
  if (classified.error == fetch::v1::ERROR_KIND_BODY_TOO_LARGE) {
    // Whoever noticed it, a body over the cap is not kept: the result has
    // the response's status and headers only (streamed chunks already sent
    // stay sent).
    result_.clear_body();
  }
  if (classified.denied && guard_.denial().has_value()) {
    denied_category_ = guard_.denial()->category;
  }
  FindRedirect();

  core::AttemptOutcome outcome;
  outcome.request_sent = connected_;
  outcome.status = result_.status();
  outcome.error = result_.error();
  outcome.over_limit = classified.over_limit;
  curl_off_t retry_after = 0;
  if (curl_easy_getinfo(easy_.get(), CURLINFO_RETRY_AFTER, &retry_after) ==
          CURLE_OK &&
      retry_after > 0) {
    outcome.retry_after = absl::Seconds(retry_after);
  }
  return outcome;
}

}  // namespace fetchd::transport
