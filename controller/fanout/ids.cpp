#include "controller/fanout/ids.h"

#include <openssl/evp.h>

#include <array>

namespace nq::fanout {
namespace {

constexpr size_t kMaxUid = 64;
constexpr size_t kMaxAgentId = 128;  // the agent's limit (agent/core/spec.cpp)

bool plain_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '_' || c == '-';
}

Status validate_plain(std::string_view text, std::string_view field, size_t max) {
  if (text.empty()) return Error::invalid_argument(field, "required");
  if (text.size() > max)
    return Error::invalid_argument(field, "longer than " + std::to_string(max) + " characters");
  for (char c : text)
    if (!plain_char(c))
      return Error::invalid_argument(
          field, "\"" + std::string(text) + "\" has characters outside [A-Za-z0-9._-]");
  return ok();
}

}  // namespace

Status validate_experiment_uid(std::string_view uid) {
  return validate_plain(uid, "experiment.uid", kMaxUid);
}

std::string lease_holder(std::string_view experiment_uid) {
  return "controller/" + std::string(experiment_uid);
}

Result<std::string> injection_id(std::string_view experiment_uid, const nodequake::v1::PodRef& pod,
                                 std::string_view step) {
  NQ_TRY(validate_experiment_uid(experiment_uid));
  // Kubernetes names are DNS labels/subdomains, a subset of the plain set.
  NQ_TRY(validate_plain(pod.namespace_(), "pod.namespace", 253));
  NQ_TRY(validate_plain(pod.name(), "pod.name", 253));
  if (!step.empty()) NQ_TRY(validate_plain(step, "step", kMaxAgentId));

  std::string tail = pod.namespace_() + "/" + pod.name();
  if (!step.empty()) tail += "/" + std::string(step);
  std::string id = std::string(experiment_uid) + "/" + tail;
  if (id.size() <= kMaxAgentId) return id;

  // '/' cannot occur inside the parts, so "ns/pod/step" is an unambiguous encoding.
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  if (EVP_Digest(tail.data(), tail.size(), md.data(), &len, EVP_sha256(), nullptr) != 1)
    return Error::internal("SHA-256 of an injection id failed");
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  for (size_t i = 0; i < 16; ++i) {
    hex += kHex[md[i] >> 4];
    hex += kHex[md[i] & 15];
  }
  return std::string(experiment_uid) + "/h-" + hex;
}

}  // namespace nq::fanout
