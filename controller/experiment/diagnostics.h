// Every problem found in an experiment file, with its place, so that
// `nqctl validate` can report all of them at once instead of the first.
#pragma once

#include <string>
#include <vector>

#include "common/error.h"

namespace nq::experiment {

struct Diagnostic {
  std::string file;
  int line = 0;       // 1-based; 0 when unknown
  std::string field;  // "spec.delay.latency"; may be empty (document-level)
  std::string message;
  // "file:line: field: message"
  std::string str() const;
};

class Diagnostics {
 public:
  explicit Diagnostics(std::string file) : file_(std::move(file)) {}

  void add(int line, std::string field, std::string message);
  const std::string& file() const { return file_; }
  const std::vector<Diagnostic>& all() const { return items_; }
  bool empty() const { return items_.empty(); }
  size_t size() const { return items_.size(); }
  // One InvalidArgument error whose message lists every diagnostic, one per line.
  Error to_error() const;

 private:
  std::string file_;
  std::vector<Diagnostic> items_;
};

}  // namespace nq::experiment
