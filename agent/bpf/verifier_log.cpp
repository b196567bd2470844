#include "agent/bpf/verifier_log.h"

#include <bpf/libbpf.h>
#include <string.h>

namespace nq::bpf {

std::string verifier_log_tail(std::string_view log, size_t max_bytes) {
  std::string_view v = log.substr(0, ::strnlen(log.data(), log.size()));
  while (!v.empty() && (v.back() == '\n' || v.back() == ' ')) v.remove_suffix(1);
  if (v.size() > max_bytes) {
    v = v.substr(v.size() - max_bytes);
    if (size_t nl = v.find('\n'); nl != std::string_view::npos) v.remove_prefix(nl + 1);
  }
  return std::string(v);
}

VerifierLog::VerifierLog(size_t size) : buf_(new char[size]), size_(size) {
  buf_[0] = '\0';
}

void VerifierLog::attach(bpf_object_open_opts& opts) {
  opts.kernel_log_buf = buf_.get();
  opts.kernel_log_size = size_;
  opts.kernel_log_level = 0;
}

Error VerifierLog::annotate(Error err) const {
  const std::string tail = verifier_log_tail(std::string_view(buf_.get(), size_));
  if (tail.empty()) return err;
  return Error(err.code(), err.context() + " (verifier log, last lines:\n" + tail + "\n)");
}

}  // namespace nq::bpf
