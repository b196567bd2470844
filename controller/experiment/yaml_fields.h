// Reading one YAML mapping of an experiment file field by field. Every
// accessor records the key as known, reports a bad value (with its line) to
// the Diagnostics and returns nullopt, and parsing goes on, so one pass finds
// every error. finish() then reports the keys nobody asked for as unknown,
// with a "did you mean" among the known ones.
#pragma once

#include <yaml-cpp/yaml.h>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"
#include "controller/experiment/diagnostics.h"

namespace nq::experiment {

int line_of(const YAML::Node& node);

// Closest of `known` to `word` when it is a plausible typo, else "".
std::string suggest(std::string_view word, const std::set<std::string, std::less<>>& known);

class Fields {
 public:
  // `path` is the mapping's own field path ("spec.delay"; "" at the top).
  // A node that is not a mapping is reported once and reads as empty.
  Fields(Diagnostics& diag, const YAML::Node& node, std::string path);

  bool is_map() const { return is_map_; }
  int line() const { return line_of(node_); }
  const std::string& path() const { return path_; }
  std::string path_of(std::string_view key) const;
  Diagnostics& diag() { return diag_; }

  // The raw node (undefined when absent or null); marks the key known.
  YAML::Node take(std::string_view key);
  bool has(std::string_view key);

  // Reports `key` when present: nodequake cannot honour it, `why` says so.
  void reject(std::string_view key, std::string_view why);
  void required(std::string_view key);

  std::optional<std::string> str(std::string_view key, bool required = false);
  std::optional<std::chrono::nanoseconds> duration(std::string_view key, bool required = false);
  // "30", "30%", 30, "0.5": 0..100.
  std::optional<double> percent(std::string_view key, bool required = false);
  std::optional<double> number(std::string_view key, bool required = false);
  std::optional<uint64_t> uint(std::string_view key, uint64_t min, uint64_t max,
                               bool required = false);
  std::optional<uint64_t> bytes(std::string_view key, bool required = false);
  std::optional<uint64_t> rate(std::string_view key, bool required = false);
  std::optional<std::vector<std::string>> str_list(std::string_view key, bool required = false);
  std::optional<std::map<std::string, std::string>> str_map(std::string_view key);

  // One of `choices` ("to", "from", "both"): an error lists them.
  template <class T>
  std::optional<T> choice(std::string_view key,
                          std::initializer_list<std::pair<std::string_view, T>> choices,
                          bool required = false);

  // Reports every key that no accessor asked for.
  void finish();

  void error(const YAML::Node& at, std::string_view field, std::string message);

 private:
  std::optional<std::string> scalar(const YAML::Node& n, std::string_view key);
  // A present single value: takes `key`, reports it as required (when
  // `required`) or not a scalar; nullopt when absent or wrong.
  struct Scalar {
    YAML::Node node;
    std::string text;
  };
  std::optional<Scalar> take_scalar(std::string_view key, bool required);
  // The value `parsed` from a present scalar, or an error at it naming `what`.
  template <class T>
  std::optional<T> checked(const Scalar& s, std::string_view key, Result<T> parsed,
                           std::string_view what);
  std::string choice_error(std::string_view value, const std::vector<std::string_view>& names);

  Diagnostics& diag_;
  YAML::Node node_;
  std::string path_;
  bool is_map_ = false;
  std::set<std::string, std::less<>> known_;
};

// Scalar conversions shared by the parsers; nullopt when malformed.
std::optional<double> parse_percent(std::string_view text);
std::optional<double> parse_number(std::string_view text);
std::optional<uint64_t> parse_uint(std::string_view text);

template <class T>
std::optional<T> Fields::choice(std::string_view key,
                                std::initializer_list<std::pair<std::string_view, T>> choices,
                                bool required) {
  auto s = take_scalar(key, required);
  if (!s) return std::nullopt;
  std::vector<std::string_view> names;
  for (const auto& [name, value] : choices) {
    if (s->text == name) return value;
    names.push_back(name);
  }
  error(s->node, path_of(key), choice_error(s->text, names));
  return std::nullopt;
}

}  // namespace nq::experiment
