#include "controller/killswitch/token.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <array>
#include <cctype>

#include "common/file.h"

namespace nq::killswitch {
namespace {

constexpr size_t kMinTokenLength = 16;

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::array<unsigned char, 32> sha256(std::string_view data) {
  std::array<unsigned char, 32> md{};
  unsigned int len = 0;
  // EVP_Digest with SHA-256 cannot fail short of memory exhaustion; a zero
  // digest then makes every comparison a mismatch below (fail closed).
  if (EVP_Digest(data.data(), data.size(), md.data(), &len, EVP_sha256(), nullptr) != 1) md.fill(0);
  return md;
}

}  // namespace

Result<std::string> read_token_file(const std::filesystem::path& path) {
  auto text = read_file(path);
  if (!text.ok()) return std::move(text).error().wrapped("token_file");
  const std::string_view token = trim(*text);
  if (token.size() < kMinTokenLength)
    return Error::invalid_argument("token_file", path.string() + " holds a token shorter than " +
                                                     std::to_string(kMinTokenLength) +
                                                     " characters");
  return std::string(token);
}

std::optional<std::string_view> bearer_token(std::string_view authorization) {
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() <= kScheme.size()) return std::nullopt;
  for (size_t i = 0; i < kScheme.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != kScheme[i])
      return std::nullopt;
  std::string_view token = trim(authorization.substr(kScheme.size()));
  if (token.empty()) return std::nullopt;
  return token;
}

bool token_matches(std::string_view presented, std::string_view expected) {
  const auto a = sha256(presented);
  const auto b = sha256(expected);
  // An empty expected token never matches (read_token_file refuses it anyway).
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0 && !expected.empty();
}

}  // namespace nq::killswitch
