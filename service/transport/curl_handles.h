// RAII owners for libcurl handles. Every CURL, CURLM and curl_slist fetchd
// creates (and every curl_mime and CURLU) is held by one of these.
#ifndef FETCHD_SERVICE_TRANSPORT_CURL_HANDLES_H_
#define FETCHD_SERVICE_TRANSPORT_CURL_HANDLES_H_

#include <curl/curl.h>

#include <memory>

namespace fetchd::transport {

struct CurlEasyDeleter {
  void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
};
struct CurlMultiDeleter {
  void operator()(CURLM* handle) const { curl_multi_cleanup(handle); }
};
struct CurlSlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
struct CurlUrlDeleter {
  void operator()(CURLU* url) const { curl_url_cleanup(url); }
};

using CurlEasyPtr = std::unique_ptr<CURL, CurlEasyDeleter>;
using CurlMultiPtr = std::unique_ptr<CURLM, CurlMultiDeleter>;
using CurlSlistPtr = std::unique_ptr<curl_slist, CurlSlistDeleter>;
using CurlUrlPtr = std::unique_ptr<CURLU, CurlUrlDeleter>;

struct CurlMimeDeleter {
  void operator()(curl_mime* mime) const { curl_mime_free(mime); }
};
// A multipart body; must outlive its use by the easy handle it was made for
// (unset CURLOPT_MIMEPOST, or clean up the handle, before freeing it).
using CurlMimePtr = std::unique_ptr<curl_mime, CurlMimeDeleter>;

}  // namespace fetchd::transport

#endif  // FETCHD_SERVICE_TRANSPORT_CURL_HANDLES_H_
