// Experiment files: YAML, one or many `---` documents, in Chaos Mesh's shape
// (apiVersion chaos-mesh.org/v1alpha1 or nodequake.io/v1alpha1). The format
// reference is docs/experiments.md.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"
#include "controller/experiment/diagnostics.h"
#include "controller/experiment/model.h"

namespace nq::experiment {

inline constexpr std::string_view kApiVersion = "nodequake.io/v1alpha1";
inline constexpr std::string_view kChaosMeshApiVersion = "chaos-mesh.org/v1alpha1";

struct Parsed {
  std::vector<Document> documents;  // only the documents without errors
  std::vector<Diagnostic> diagnostics;
  bool ok() const { return diagnostics.empty(); }
};

// Parses `text` as if read from `file` (the name used in every diagnostic).
// Never stops at the first error: every problem of every document is listed.
Parsed parse_experiments(std::string_view text, const std::string& file);

// Reads and parses a file; an unreadable file is one diagnostic.
Parsed parse_experiment_file(const std::string& path);

// For callers that want one error: the documents, or InvalidArgument whose
// message has every diagnostic on its own line.
Result<std::vector<Document>> load_experiments(std::string_view text, const std::string& file);

}  // namespace nq::experiment
