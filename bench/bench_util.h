// Pieces the benchmark programs share: Ctrl-C that still tears down what a
// run set up, and scratch directories.
#pragma once

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <time.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>

#include "common/result.h"

namespace nq::bench {

// SIGINT/SIGTERM/SIGHUP blocked from the start (every thread, gRPC's included,
// inherits the mask) and taken synchronously between steps, so an interrupted
// benchmark still stops its agents and takes their pods down.
class StopSignals {
 public:
  StopSignals() {
    sigemptyset(&set_);
    for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set_, s);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
  }
  Status check() const {
    const timespec zero{};
    const int sig = sigtimedwait(&set_, nullptr, &zero);
    if (sig > 0)
      return Error::status(Code::kCancelled, std::string("interrupted by ") + strsignal(sig));
    return ok();
  }

 private:
  sigset_t set_;
};

// A directory made with mkdtemp and removed with everything in it.
class TempDir {
 public:
  static Result<TempDir> make(const std::filesystem::path& parent, const std::string& prefix) {
    std::string tmpl = (parent / (prefix + "XXXXXX")).string();
    if (::mkdtemp(tmpl.data()) == nullptr) return Error::from_errno(errno, "mkdtemp " + tmpl);
    return TempDir(tmpl);
  }
  TempDir(TempDir&& o) noexcept : path_(std::exchange(o.path_, {})) {}
  TempDir& operator=(TempDir&&) = delete;
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  explicit TempDir(std::filesystem::path p) : path_(std::move(p)) {}
  std::filesystem::path path_;
};

}  // namespace nq::bench
