#include "controller/experiment/yaml_fields.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "common/duration.h"
#include "common/units.h"

namespace nq::experiment {
namespace {

// The part of a common/ parser's message after its own "field: " prefix.
std::string reason(const Error& e, std::string_view prefix) {
  std::string m = e.message();
  const std::string p = std::string(prefix) + ": ";
  if (m.rfind(p, 0) == 0) m.erase(0, p.size());
  return m;
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const bool same = std::tolower(static_cast<unsigned char>(a[i - 1])) ==
                        std::tolower(static_cast<unsigned char>(b[j - 1]));
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (same ? 0 : 1)});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

int line_of(const YAML::Node& node) {
  return node.IsDefined() ? node.Mark().line + 1 : 0;
}

std::string suggest(std::string_view word, const std::set<std::string, std::less<>>& known) {
  std::string best;
  size_t best_d = std::max<size_t>(2, word.size() / 3) + 1;
  for (const std::string& k : known) {
    const size_t d = edit_distance(word, k);
    if (d < best_d) {
      best_d = d;
      best = k;
    }
  }
  return best;
}

std::optional<double> parse_number(std::string_view text) {
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(v))
    return std::nullopt;
  return v;
}

std::optional<double> parse_percent(std::string_view text) {
  if (!text.empty() && text.back() == '%') text.remove_suffix(1);
  auto v = parse_number(text);
  if (!v || *v < 0 || *v > 100) return std::nullopt;
  return v;
}

std::optional<uint64_t> parse_uint(std::string_view text) {
  uint64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || text.empty()) return std::nullopt;
  return v;
}

Fields::Fields(Diagnostics& diag, const YAML::Node& node, std::string path)
    : diag_(diag), node_(node), path_(std::move(path)) {
  is_map_ = node_.IsMap();
  if (!is_map_) {
    diag_.add(line_of(node_), path_.empty() ? "document" : path_, "must be a mapping");
    return;
  }
  // yaml-cpp keeps duplicate keys and answers lookups with the first one; a
  // second value would be silently ignored, so it is an error here.
  std::set<std::string> seen;
  for (const auto& kv : node_) {
    const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : std::string();
    if (!kv.first.IsScalar()) {
      error(kv.first, path_, "keys must be strings");
    } else if (!seen.insert(key).second) {
      error(kv.first, path_of(key), "duplicate field");
    }
  }
}

std::string Fields::path_of(std::string_view key) const {
  if (path_.empty()) return std::string(key);
  return path_ + "." + std::string(key);
}

void Fields::error(const YAML::Node& at, std::string_view field, std::string message) {
  diag_.add(line_of(at) ? line_of(at) : line_of(node_), std::string(field), std::move(message));
}

YAML::Node Fields::take(std::string_view key) {
  known_.emplace(key);
  if (!is_map_) return YAML::Node(YAML::NodeType::Undefined);
  const YAML::Node& self = node_;  // const: operator[] must not insert
  YAML::Node n = self[std::string(key)];
  if (n.IsDefined() && n.IsNull()) {
    error(n, path_of(key), "has no value");
    return YAML::Node(YAML::NodeType::Undefined);
  }
  return n;
}

bool Fields::has(std::string_view key) {
  known_.emplace(key);
  if (!is_map_) return false;
  const YAML::Node& self = node_;
  return self[std::string(key)].IsDefined();
}

void Fields::reject(std::string_view key, std::string_view why) {
  known_.emplace(key);
  if (!is_map_) return;
  const YAML::Node& self = node_;
  YAML::Node n = self[std::string(key)];
  if (n.IsDefined()) error(n, path_of(key), "not supported by nodequake: " + std::string(why));
}

void Fields::required(std::string_view key) {
  if (is_map_) diag_.add(line_of(node_), path_of(key), "is required");
}

std::optional<std::string> Fields::scalar(const YAML::Node& n, std::string_view key) {
  if (!n.IsScalar()) {
    error(n, path_of(key), "must be a single value, not a list or mapping");
    return std::nullopt;
  }
  return n.Scalar();
}

std::string Fields::choice_error(std::string_view value,
                                 const std::vector<std::string_view>& names) {
  std::string list;
  for (std::string_view n : names) list += (list.empty() ? "" : ", ") + std::string(n);
  std::string msg = "\"" + std::string(value) + "\" is not one of: " + list;
  std::set<std::string, std::less<>> known(names.begin(), names.end());
  if (auto s = suggest(value, known); !s.empty()) msg += "; did you mean " + s + "?";
  return msg;
}

std::optional<Fields::Scalar> Fields::take_scalar(std::string_view key, bool req) {
  YAML::Node n = take(key);
  if (!n.IsDefined()) {
    if (req) required(key);
    return std::nullopt;
  }
  auto text = scalar(n, key);
  if (!text) return std::nullopt;
  return Scalar{n, std::move(*text)};
}

template <class T>
std::optional<T> Fields::checked(const Scalar& s, std::string_view key, Result<T> parsed,
                                 std::string_view what) {
  if (!parsed.ok()) {
    error(s.node, path_of(key), reason(parsed.error(), what));
    return std::nullopt;
  }
  return *parsed;
}

std::optional<std::string> Fields::str(std::string_view key, bool req) {
  auto s = take_scalar(key, req);
  if (!s) return std::nullopt;
  if (s->text.empty()) {
    error(s->node, path_of(key), "must not be empty");
    return std::nullopt;
  }
  return s->text;
}

std::optional<std::chrono::nanoseconds> Fields::duration(std::string_view key, bool req) {
  auto s = take_scalar(key, req);
  return s ? checked(*s, key, parse_duration(s->text), "duration") : std::nullopt;
}

std::optional<double> Fields::percent(std::string_view key, bool req) {
  auto s = take_scalar(key, req);
  if (!s) return std::nullopt;
  auto v = parse_percent(s->text);
  if (!v)
    error(s->node, path_of(key),
          "\"" + s->text + "\" is not a percentage in 0..100 (e.g. 30 or \"30%\")");
  return v;
}

std::optional<double> Fields::number(std::string_view key, bool req) {
  auto s = take_scalar(key, req);
  if (!s) return std::nullopt;
  auto v = parse_number(s->text);
  if (!v) error(s->node, path_of(key), "\"" + s->text + "\" is not a number");
  return v;
}

std::optional<uint64_t> Fields::uint(std::string_view key, uint64_t min, uint64_t max, bool req) {
  auto s = take_scalar(key, req);
  if (!s) return std::nullopt;
  auto v = parse_uint(s->text);
  if (!v || *v < min || *v > max) {
    error(s->node, path_of(key),
          "\"" + s->text + "\" is not a whole number in " + std::to_string(min) + ".." +
              std::to_string(max));
    return std::nullopt;
  }
  return v;
}

std::optional<uint64_t> Fields::bytes(std::string_view key, bool req) {
  auto s = take_scalar(key, req);
  return s ? checked(*s, key, parse_bytes(s->text, "size"), "size") : std::nullopt;
}

std::optional<uint64_t> Fields::rate(std::string_view key, bool req) {
  auto s = take_scalar(key, req);
  return s ? checked(*s, key, parse_rate(s->text, "rate"), "rate") : std::nullopt;
}

std::optional<std::vector<std::string>> Fields::str_list(std::string_view key, bool req) {
  YAML::Node n = take(key);
  if (!n.IsDefined()) {
    if (req) required(key);
    return std::nullopt;
  }
  if (!n.IsSequence()) {
    error(n, path_of(key), "must be a list");
    return std::nullopt;
  }
  std::vector<std::string> out;
  bool good = true;
  for (size_t i = 0; i < n.size(); ++i) {
    const YAML::Node item = n[i];
    const std::string field = path_of(key) + "[" + std::to_string(i) + "]";
    if (!item.IsScalar() || item.Scalar().empty()) {
      error(item, field, "must be a non-empty string");
      good = false;
      continue;
    }
    out.push_back(item.Scalar());
  }
  if (!good) return std::nullopt;
  return out;
}

std::optional<std::map<std::string, std::string>> Fields::str_map(std::string_view key) {
  YAML::Node n = take(key);
  if (!n.IsDefined()) return std::nullopt;
  if (!n.IsMap()) {
    error(n, path_of(key), "must be a mapping of strings");
    return std::nullopt;
  }
  std::map<std::string, std::string> out;
  bool good = true;
  for (const auto& kv : n) {
    if (!kv.first.IsScalar() || !kv.second.IsScalar()) {
      error(kv.first, path_of(key), "keys and values must be strings");
      good = false;
      continue;
    }
    const std::string k = kv.first.Scalar();
    if (!out.emplace(k, kv.second.Scalar()).second) {
      error(kv.first, path_of(key) + "." + k, "duplicate field");
      good = false;
    }
  }
  if (!good) return std::nullopt;
  return out;
}

void Fields::finish() {
  if (!is_map_) return;
  for (const auto& kv : node_) {
    if (!kv.first.IsScalar()) continue;
    const std::string key = kv.first.Scalar();
    if (known_.count(key)) continue;
    std::string msg = "unknown field";
    if (auto s = suggest(key, known_); !s.empty()) msg += "; did you mean " + s + "?";
    error(kv.first, path_of(key), msg);
  }
}

}  // namespace nq::experiment
