// The kernel verifier's log for one bpf_object load, so that a rejected
// program fails with the verifier's own last lines instead of a bare errno.
#pragma once

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

#include "common/error.h"

struct bpf_object_open_opts;

namespace nq::bpf {

// The last lines of `log` (at most `max_bytes`, cut at a line start), without
// trailing blanks: the verifier says why it gave up at the end.
std::string verifier_log_tail(std::string_view log, size_t max_bytes = 3000);

class VerifierLog {
 public:
  // Kernels before 6.4 fill a fixed log from the start and fail with ENOSPC
  // when it is full, so `size` must hold a whole failing verification for the
  // tail to be the interesting part; newer kernels keep the tail anyway.
  explicit VerifierLog(size_t size);

  // Points the open options at the buffer, at level 0: libbpf retries a
  // failed program load at level 1 into it, so a good load costs nothing.
  void attach(bpf_object_open_opts& opts);

  // `err` with the log's last lines appended when the log has any.
  Error annotate(Error err) const;

 private:
  std::unique_ptr<char[]> buf_;
  size_t size_;
};

}  // namespace nq::bpf
