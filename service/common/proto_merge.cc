#include "service/common/proto_merge.h"

#include <vector>

#include "google/protobuf/descriptor.h"
#include "google/protobuf/duration.pb.h"

namespace fetchd {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

// Clears in `dst` every Duration that `src` sets, at any depth, so that the
// MergeFrom that follows copies it whole.
void ClearDurationsSetIn(const Message& src, Message* dst) {
  const auto* reflection = src.GetReflection();
  std::vector<const FieldDescriptor*> fields;
  reflection->ListFields(src, &fields);
  for (const FieldDescriptor* field : fields) {
    if (field->is_repeated() ||
        field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
      continue;
    }
    if (field->message_type()->full_name() ==
        google::protobuf::Duration::descriptor()->full_name()) {
      dst->GetReflection()->ClearField(dst, field);
    } else {
      ClearDurationsSetIn(reflection->GetMessage(src, field),
                          dst->GetReflection()->MutableMessage(dst, field));
    }
  }
}

}  // namespace

void MergeOver(const Message& src, Message* dst) {
  ClearDurationsSetIn(src, dst);
  dst->MergeFrom(src);
}

}  // namespace fetchd
