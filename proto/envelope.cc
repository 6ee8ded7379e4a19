#include "proto/envelope.h"

#include <string>

namespace strata::proto {

std::string SerializeEnvelope(const v1::Envelope& envelope) {
  std::string out;
  envelope.SerializeToString(&out);
  return out;
}

StatusOr<v1::Envelope> ParseEnvelope(std::string_view bytes, size_t max_bytes) {
  if (bytes.size() > max_bytes) {
    return PayloadTooLargeError("envelope of " + std::to_string(bytes.size()) +
                                " bytes is over the limit of " + std::to_string(max_bytes));
  }
  v1::Envelope envelope;
  if (!envelope.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return DataLossError("malformed envelope (" + std::to_string(bytes.size()) + " bytes)");
  }
  if (envelope.body_case() == v1::Envelope::BODY_NOT_SET) {
    return InvalidArgumentError("envelope carries no known message body");
  }
  return envelope;
}

std::string_view BodyName(const v1::Envelope& envelope) {
  if (envelope.body_case() == v1::Envelope::BODY_NOT_SET) return "none";
  const auto* field = v1::Envelope::descriptor()->FindFieldByNumber(envelope.body_case());
  return field == nullptr ? std::string_view("unknown") : std::string_view(field->name());
}

}  // namespace strata::proto
