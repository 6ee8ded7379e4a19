// Small synchronous GETs against the server before a run: its /version (recorded in the result
// header) and /v1/models (the model to use when none is given). Each has a 3 s deadline.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "bench/driver/api_target.h"
#include "common/status.h"

namespace strata::bench {

// GET path; the parsed JSON body of a 200 answer, else an error naming what went wrong.
StatusOr<nlohmann::json> GetJson(const ApiTarget& target, const std::string& path);

// The server's /version body, or null when it has none (any error).
nlohmann::json ProbeServerVersion(const ApiTarget& target);

// The id of the first model /v1/models lists.
StatusOr<std::string> FirstServedModel(const ApiTarget& target);

}  // namespace strata::bench
