// request_proto_fuzzer: a whole fetch.v1.BatchRequest in protobuf binary
// form through the validator as the FetchBatch handler runs it:
// ValidateBatch, EffectiveDefaults, then Build for each request (the first
// 16). Seeds are text protos (corpus/request_proto/*.textproto), encoded by
// fuzz/run.sh.
#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "fetch/v1/fetch.pb.h"
#include "fuzz/fuzz_check.h"
#include "fuzz/request_invariants.h"
#include "google/protobuf/stubs/logging.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto* env = [] {
    // Invalid UTF-8 in a string field fails the parse; don't log each one.
    google::protobuf::SetLogHandler(nullptr);
    return new fetchd::fuzz::ValidatorEnv();
  }();
  fetch::v1::BatchRequest batch;
  if (!batch.ParseFromArray(data, static_cast<int>(size))) return 0;

  const absl::Status status = env->validator.ValidateBatch(batch);
  fetch::v1::FetchRequest base = env->server_defaults;
  if (status.ok()) {
    FUZZ_CHECK(batch.requests_size() >= 1 &&
               static_cast<uint32_t>(batch.requests_size()) <=
                   env->config.limits().max_batch_size());
    FUZZ_CHECK(batch.defaults().id().empty() && batch.defaults().url().empty());
    base = env->validator.EffectiveDefaults(batch.defaults());
  } else {
    fetchd::fuzz::CheckRejection(status);
  }
  // Also on a rejected batch, so each request is fuzzed on its own.
  for (int i = 0; i < batch.requests_size() && i < 16; ++i) {
    fetchd::fuzz::BuildAndCheck(*env, base, batch.requests(i),
                                static_cast<uint32_t>(i));
  }
  return 0;
}
