#include "proto/status_convert.h"

#include <string>

namespace strata::proto {

v1::Error ToProto(const Status& status) {
  v1::Error error;
  error.set_code(static_cast<v1::StatusCode>(static_cast<int>(status.code())));
  error.set_message(status.message());
  return error;
}

Status FromProto(const v1::Error& error) {
  const int code = static_cast<int>(error.code());
  if (code == 0) return OkStatus();
  // The proto enum mirrors common/status.h (a test checks it); anything else is from a peer with
  // a newer code list.
  if (!v1::StatusCode_IsValid(code)) {
    return Status(StatusCode::kUnknown,
                  "peer error code " + std::to_string(code) + ": " + error.message());
  }
  return Status(static_cast<StatusCode>(code), error.message());
}

}  // namespace strata::proto
