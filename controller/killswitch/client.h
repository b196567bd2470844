// The client side of the kill-switch endpoint (http.cpp): one request with
// the bearer token, as `nqctl killswitch` and the fan-out benchmark send it.
#pragma once

#include <string>

#include "common/result.h"

namespace nq::killswitch {

struct HttpAnswer {
  long status = 0;
  std::string body;
};

// `method` ("GET", "POST", "DELETE") on `url`; `body` (JSON) sent when not
// empty. Unavailable, naming method and url, when no HTTP answer came back;
// any HTTP status is an answer.
Result<HttpAnswer> request(const std::string& method, const std::string& url,
                           const std::string& token, const std::string& body, long timeout_ms);

}  // namespace nq::killswitch
