// Bearer-token authentication of the kill switch endpoint.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace nq::killswitch {

// The token file's content without surrounding whitespace (a Kubernetes
// Secret mounted as a file often ends in a newline). Empty or shorter than 16
// characters is an error: a guessable kill-switch token is worse than none.
Result<std::string> read_token_file(const std::filesystem::path& path);

// The token of an "Authorization: Bearer <token>" header value (scheme
// case-insensitive, RFC 6750); none for any other form.
std::optional<std::string_view> bearer_token(std::string_view authorization);

// Constant time in the content and in the length of both: the two are hashed
// (SHA-256) and the digests compared with CRYPTO_memcmp, so neither an early
// mismatch nor a length difference shows in the timing.
bool token_matches(std::string_view presented, std::string_view expected);

}  // namespace nq::killswitch
