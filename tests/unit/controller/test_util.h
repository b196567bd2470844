// Helpers shared by the controller unit tests.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <variant>
#include <vector>

#include "controller/experiment/parse.h"

namespace nq::experiment::testing {

inline std::string data(const std::string& name) {
  return std::string(NQ_EXPERIMENT_DATA) + "/" + name;
}

inline std::string all_diagnostics(const Parsed& p) {
  std::string out;
  for (const Diagnostic& d : p.diagnostics) out += d.str() + "\n";
  return out;
}

// Parses a data file that must be valid and returns its documents.
inline std::vector<Document> load_ok(const std::string& name) {
  Parsed p = parse_experiment_file(data(name));
  EXPECT_TRUE(p.ok()) << all_diagnostics(p);
  return std::move(p.documents);
}

inline const Experiment& experiment_at(const std::vector<Document>& docs, size_t i) {
  return std::get<Experiment>(docs.at(i));
}

}  // namespace nq::experiment::testing
