// Forwarding header: URL parsing moved to service/url/http_url.h (namespace
// fetchd::url). Kept only until service/api and service/ws include the new
// header; new code includes service/url/http_url.h.
#ifndef FETCHD_SERVICE_TRANSPORT_HTTP_URL_H_
#define FETCHD_SERVICE_TRANSPORT_HTTP_URL_H_

#include "service/url/http_url.h"

namespace fetchd::transport {

using url::CheckProxyUrl;
using url::HttpUrl;
using url::ParseHttpUrl;

}  // namespace fetchd::transport

#endif  // FETCHD_SERVICE_TRANSPORT_HTTP_URL_H_
