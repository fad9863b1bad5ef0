// url_fuzzer: RequestValidator::Build (and so ParseUrl, curl's CURLU) on a
// request made of fuzzed strings: url, method, then header name/value pairs,
// each read by FuzzedDataProvider::ConsumeRandomLengthString (a lone
// backslash ends a string, "\\" is a backslash). A seed that is just a URL
// is a request with that URL and nothing else.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>

#include "fetch/v1/fetch.pb.h"
#include "fuzz/request_invariants.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto* env = new fetchd::fuzz::ValidatorEnv();
  FuzzedDataProvider in(data, size);
  fetch::v1::FetchRequest request;
  request.set_url(in.ConsumeRandomLengthString(9000));
  request.set_method(in.ConsumeRandomLengthString(16));
  while (in.remaining_bytes() > 0 && request.headers_size() < 8) {
    fetch::v1::Header* header = request.add_headers();
    header->set_name(in.ConsumeRandomLengthString(64));
    header->set_value(in.ConsumeRandomLengthString(256));
  }
  fetchd::fuzz::BuildAndCheck(*env, env->server_defaults, request, 0);
  return 0;
}
