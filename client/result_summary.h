// fetchctl -v: a FetchResult as a human-readable block for stderr, like the
// summary curl -v and curl -w print: what was fetched, the status, the peer
// and whether its connection was reused, the time of each phase, the
// redirects and the response headers.
//
// Thread-safety: pure function.
#ifndef FETCHD_CLIENT_RESULT_SUMMARY_H_
#define FETCHD_CLIENT_RESULT_SUMMARY_H_

#include <string>

#include "fetch/v1/fetch.pb.h"

namespace fetchd::client {

// Lines starting with "* " (facts) or "< " (response headers), each ending
// in '\n', e.g.
//
//   * [0] r0 http://127.0.0.1:8080/ok
//   * HTTP/1.1 200, 2 bytes received, 0 bytes sent, 1 attempt
//   * remote 127.0.0.1:8080, connection reused
//   * queue wait 0.010 ms, dns 0.000 ms, connect 0.000 ms, tls 0.000 ms,
//   *   first byte 0.412 ms, total 0.450 ms, redirect 0.000 ms
//   < Content-Length: 2
//
// (the id only when the request has one), plus "* redirect N: STATUS URL"
// per hop and "* error KIND: MESSAGE" for a
// failed request.
std::string VerboseSummary(const fetch::v1::FetchResult& result);

}  // namespace fetchd::client

#endif  // FETCHD_CLIENT_RESULT_SUMMARY_H_
