#include "client/result_summary.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"

namespace fetchd::client {
namespace {

double Millis(const google::protobuf::Duration& d) {
  return static_cast<double>(d.seconds()) * 1e3 +
         static_cast<double>(d.nanos()) / 1e6;
}

}  // namespace

std::string VerboseSummary(const fetch::v1::FetchResult& result) {
  std::string out =
      absl::StrFormat("* [%d] %s%s%s\n", result.index(), result.id(),
                      result.id().empty() ? "" : " ", result.final_url());
  if (result.status() != 0) {
    absl::StrAppendFormat(
        &out, "* HTTP/%s %d, %d bytes received, %d bytes sent, %d attempt%s\n",
        result.http_version().empty() ? "?" : result.http_version(),
        result.status(), result.bytes_received(), result.bytes_sent(),
        result.attempts(), result.attempts() == 1 ? "" : "s");
  } else {
    absl::StrAppendFormat(&out, "* no response, %d attempt%s\n",
                          result.attempts(), result.attempts() == 1 ? "" : "s");
  }
  if (!result.remote_address().empty()) {
    absl::StrAppend(&out, "* remote ", result.remote_address(),
                    result.connection_reused() ? ", connection reused\n"
                                               : ", new connection\n");
  }
  const fetch::v1::Timings& t = result.timings();
  absl::StrAppendFormat(
      &out,
      "* queue wait %.3f ms, dns %.3f ms, connect %.3f ms, tls %.3f ms,\n"
      "*   first byte %.3f ms, total %.3f ms, redirect %.3f ms\n",
      Millis(t.queue_wait()), Millis(t.dns()), Millis(t.connect()),
      Millis(t.tls()), Millis(t.first_byte()), Millis(t.total()),
      Millis(t.redirect()));
  for (int i = 0; i < result.redirect_history_size(); ++i) {
    const fetch::v1::RedirectHop& hop = result.redirect_history(i);
    absl::StrAppendFormat(&out, "* redirect %d: %d %s\n", i + 1, hop.status(),
                          hop.url());
  }
  if (result.has_politeness()) {
    const fetch::v1::PolitenessReport& p = result.politeness();
    std::vector<absl::string_view> what;
    if (p.rate_limited()) what.push_back("waited for the host's rate");
    if (p.paused()) what.push_back("waited for the host's pause");
    if (p.retry_denied()) what.push_back("retry denied by the retry budget");
    absl::StrAppend(&out, "* politeness rule ", p.rule(), ": ",
                    absl::StrJoin(what, ", "), "\n");
  }
  if (result.error() != fetch::v1::ERROR_KIND_NONE) {
    absl::string_view kind = fetch::v1::ErrorKind_Name(result.error());
    absl::ConsumePrefix(&kind, "ERROR_KIND_");
    absl::StrAppend(&out, "* error ", kind, ": ", result.error_message(), "\n");
  }
  for (const fetch::v1::Header& h : result.headers()) {
    absl::StrAppend(&out, "< ", h.name(), ": ", h.value(), "\n");
  }
  return out;
}

}  // namespace fetchd::client
