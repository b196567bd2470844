#include "agent/runtime/local/pods_file.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <charconv>
#include <fstream>
#include <initializer_list>
#include <set>
#include <sstream>

namespace nq::sandbox {
namespace {

// A decimal "123.45" split into integer digits and fraction digits, so
// quantities are converted exactly (no floating point rounding).
struct Decimal {
  int64_t integer = 0;
  int64_t fraction = 0;
  int fraction_digits = 0;
};

bool parse_decimal(std::string_view s, Decimal& d) {
  const size_t dot = s.find('.');
  const std::string_view ip = s.substr(0, dot);
  const std::string_view fp =
      dot == std::string_view::npos ? std::string_view() : s.substr(dot + 1);
  if (ip.empty() && fp.empty()) return false;
  if (dot != std::string_view::npos && fp.empty()) return false;
  if (fp.size() > 9) return false;
  for (std::string_view part : {ip, fp}) {
    if (part.empty()) continue;
    int64_t v = 0;
    auto [end, ec] = std::from_chars(part.data(), part.data() + part.size(), v);
    if (ec != std::errc() || end != part.data() + part.size() || v < 0) return false;
  }
  if (!ip.empty()) std::from_chars(ip.data(), ip.data() + ip.size(), d.integer);
  if (!fp.empty()) std::from_chars(fp.data(), fp.data() + fp.size(), d.fraction);
  d.fraction_digits = static_cast<int>(fp.size());
  return true;
}

// value * multiplier as an exact integer; false when it is not one or overflows.
bool scale(const Decimal& d, int64_t multiplier, int64_t& out) {
  int64_t whole = 0;
  if (__builtin_mul_overflow(d.integer, multiplier, &whole)) return false;
  int64_t pow10 = 1;
  for (int i = 0; i < d.fraction_digits; ++i) pow10 *= 10;
  __int128 frac = static_cast<__int128>(d.fraction) * multiplier;
  if (frac % pow10 != 0) return false;
  frac /= pow10;
  if (frac > INT64_MAX - whole) return false;
  out = whole + static_cast<int64_t>(frac);
  return true;
}

class Parser {
 public:
  explicit Parser(std::string_view filename) : file_(filename) {}

  Error err(const YAML::Node& at, std::string_view field, std::string_view what) const {
    return Error::invalid_argument(where(at) + ": " + std::string(field), what);
  }
  std::string where(const YAML::Node& at) const {
    return file_ + ":" + std::to_string(at.Mark().line + 1);
  }

  // Every key of `map` must be one of `known`.
  Status only_known(const YAML::Node& map, std::string_view field,
                    std::initializer_list<std::string_view> known) const {
    if (!map.IsMap()) return err(map, field, "must be a mapping");
    for (const auto& kv : map) {
      const std::string key = kv.first.Scalar();
      bool ok = false;
      for (std::string_view k : known) ok = ok || key == k;
      if (!ok) return err(kv.first, join(field, key), "unknown field \"" + key + "\"");
    }
    return nq::ok();
  }

  Result<std::string> string(const YAML::Node& n, std::string_view field) const {
    if (!n.IsScalar()) return err(n, field, "must be a string");
    return n.Scalar();
  }

  Result<bool> boolean(const YAML::Node& n, std::string_view field) const {
    if (n.IsScalar() && n.Tag() == "?") {
      if (n.Scalar() == "true") return true;
      if (n.Scalar() == "false") return false;
    }
    return err(n, field, "must be true or false");
  }

  // Label values must be strings: like the API server, refuse a plain `true`
  // or `5` that YAML types as bool or number (write "true").
  Result<std::string> label_value(const YAML::Node& n, std::string_view field) const {
    if (!n.IsScalar()) return err(n, field, "must be a string");
    if (n.Tag() == "?") {
      static const std::set<std::string> kTyped = {"true",  "false", "True", "False", "TRUE",
                                                   "FALSE", "yes",   "no",   "on",    "off",
                                                   "null",  "Null",  "NULL", "~"};
      const std::string& s = n.Scalar();
      Decimal d;
      if (kTyped.count(s) || (!s.empty() && parse_decimal(s, d)))
        return err(n, field, "must be a string: quote it (\"" + s + "\")");
    }
    if (!is_label_value(n.Scalar()))
      return err(n, field,
                 "\"" + n.Scalar() +
                     "\" is not a label value (at most 63 of [A-Za-z0-9-_.], alphanumeric at "
                     "both ends)");
    return n.Scalar();
  }

  static std::string join(std::string_view field, std::string_view key) {
    return std::string(field) + "." + std::string(key);
  }

  Result<PodSpec> pod(const YAML::Node& doc) const;

 private:
  Result<ContainerSpec> container(const YAML::Node& n, const std::string& field) const;
  std::string file_;
};

Result<ContainerSpec> Parser::container(const YAML::Node& n, const std::string& field) const {
  NQ_TRY(only_known(n, field, {"name", "command", "resources", "readinessProbe"}));
  ContainerSpec c;
  c.where = where(n);
  if (!n["name"]) return err(n, field + ".name", "is required");
  NQ_ASSIGN_OR_RETURN(c.name, string(n["name"], field + ".name"));
  if (!is_dns_label(c.name))
    return err(n["name"], field + ".name",
               "\"" + c.name + "\" is not a DNS label (lowercase alphanumerics and '-', 1-63)");
  if (const YAML::Node cmd = n["command"]) {
    if (!cmd.IsSequence() && !cmd.IsNull())
      return err(cmd, field + ".command", "must be a list of strings (argv; no shell line)");
    int i = 0;
    for (const YAML::Node& arg : cmd) {
      const std::string f = field + ".command[" + std::to_string(i++) + "]";
      NQ_ASSIGN_OR_RETURN(std::string a, string(arg, f));
      if (a.find('\0') != std::string::npos) return err(arg, f, "contains a NUL byte");
      if (c.command.empty() && a.empty()) return err(arg, f, "the program must not be empty");
      c.command.push_back(std::move(a));
    }
  }
  if (const YAML::Node probe = n["readinessProbe"]) {
    const std::string pf = field + ".readinessProbe";
    NQ_TRY(only_known(probe, pf, {"tcpSocket"}));
    const YAML::Node tcp = probe["tcpSocket"];
    if (!tcp) return err(probe, pf + ".tcpSocket", "is required (the only probe supported)");
    NQ_TRY(only_known(tcp, pf + ".tcpSocket", {"port"}));
    const YAML::Node port = tcp["port"];
    if (!port) return err(tcp, pf + ".tcpSocket.port", "is required");
    NQ_ASSIGN_OR_RETURN(std::string s, string(port, pf + ".tcpSocket.port"));
    unsigned v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size() || v == 0 || v > 65535)
      return err(port, pf + ".tcpSocket.port", "\"" + s + "\" is not a port number (1-65535)");
    c.readiness_port = static_cast<uint16_t>(v);
  }
  if (const YAML::Node res = n["resources"]) {
    const std::string rf = field + ".resources";
    NQ_TRY(only_known(res, rf, {"limits"}));
    if (const YAML::Node lim = res["limits"]) {
      const std::string lf = rf + ".limits";
      NQ_TRY(only_known(lim, lf, {"cpu", "memory"}));
      if (const YAML::Node cpu = lim["cpu"]) {
        NQ_ASSIGN_OR_RETURN(std::string s, string(cpu, lf + ".cpu"));
        NQ_ASSIGN_OR_RETURN(c.limits.cpu_millis,
                            parse_cpu_millis(s, where(cpu) + ": " + lf + ".cpu"));
      }
      if (const YAML::Node mem = lim["memory"]) {
        NQ_ASSIGN_OR_RETURN(std::string s, string(mem, lf + ".memory"));
        NQ_ASSIGN_OR_RETURN(c.limits.memory_bytes,
                            parse_memory_bytes(s, where(mem) + ": " + lf + ".memory"));
      }
    }
  }
  return c;
}

Result<PodSpec> Parser::pod(const YAML::Node& doc) const {
  NQ_TRY(only_known(doc, "(document)", {"apiVersion", "kind", "metadata", "spec"}));
  PodSpec p;
  p.where = where(doc);
  if (!doc["apiVersion"]) return err(doc, "apiVersion", "is required");
  NQ_ASSIGN_OR_RETURN(std::string api, string(doc["apiVersion"], "apiVersion"));
  if (api != kApiVersion)
    return err(doc["apiVersion"], "apiVersion",
               "\"" + api + "\" is not supported (want " + std::string(kApiVersion) + ")");
  if (!doc["kind"]) return err(doc, "kind", "is required");
  NQ_ASSIGN_OR_RETURN(std::string kind, string(doc["kind"], "kind"));
  if (kind != kKind)
    return err(doc["kind"], "kind",
               "\"" + kind + "\" is not supported (want " + std::string(kKind) + ")");

  const YAML::Node meta = doc["metadata"];
  if (!meta) return err(doc, "metadata", "is required");
  NQ_TRY(only_known(meta, "metadata", {"name", "namespace", "labels"}));
  if (!meta["name"]) return err(meta, "metadata.name", "is required");
  NQ_ASSIGN_OR_RETURN(p.name, string(meta["name"], "metadata.name"));
  if (!is_dns_label(p.name))
    return err(meta["name"], "metadata.name",
               "\"" + p.name + "\" is not a DNS label (lowercase alphanumerics and '-', 1-63)");
  if (meta["namespace"]) {
    NQ_ASSIGN_OR_RETURN(p.namespace_name, string(meta["namespace"], "metadata.namespace"));
    if (!is_dns_label(p.namespace_name))
      return err(meta["namespace"], "metadata.namespace",
                 "\"" + p.namespace_name +
                     "\" is not a DNS label (lowercase alphanumerics and '-', 1-63)");
  }
  if (const YAML::Node labels = meta["labels"]) {
    if (!labels.IsMap() && !labels.IsNull())
      return err(labels, "metadata.labels", "must be a mapping");
    for (const auto& kv : labels) {
      const std::string key = kv.first.Scalar();
      const std::string f = "metadata.labels." + key;
      if (!is_label_key(key))
        return err(kv.first, f,
                   "\"" + key +
                       "\" is not a label key ([prefix/]name, name at most 63 of [A-Za-z0-9-_.])");
      NQ_ASSIGN_OR_RETURN(p.labels[key], label_value(kv.second, f));
    }
  }

  const YAML::Node spec = doc["spec"];
  if (!spec) return err(doc, "spec", "is required");
  NQ_TRY(only_known(spec, "spec", {"hostNetwork", "containers"}));
  if (spec["hostNetwork"]) {
    NQ_ASSIGN_OR_RETURN(p.host_network, boolean(spec["hostNetwork"], "spec.hostNetwork"));
  }
  const YAML::Node containers = spec["containers"];
  if (!containers || !containers.IsSequence() || containers.size() == 0)
    return err(containers ? containers : spec, "spec.containers", "needs at least one container");
  std::set<std::string> names;
  for (size_t i = 0; i < containers.size(); ++i) {
    const std::string f = "spec.containers[" + std::to_string(i) + "]";
    NQ_ASSIGN_OR_RETURN(ContainerSpec c, container(containers[i], f));
    if (!names.insert(c.name).second)
      return err(containers[i]["name"], f + ".name", "duplicate container name \"" + c.name + "\"");
    p.containers.push_back(std::move(c));
  }
  return p;
}

bool is_alnum_lower(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
bool is_alnum(char c) {
  return is_alnum_lower(c) || (c >= 'A' && c <= 'Z');
}

bool is_dns_subdomain(std::string_view s) {
  if (s.empty() || s.size() > 253) return false;
  size_t start = 0;
  for (;;) {
    const size_t dot = s.find('.', start);
    if (!is_dns_label(s.substr(start, dot == std::string_view::npos ? dot : dot - start)))
      return false;
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
  }
}

}  // namespace

bool is_dns_label(std::string_view s) {
  if (s.empty() || s.size() > 63) return false;
  if (!is_alnum_lower(s.front()) || !is_alnum_lower(s.back())) return false;
  for (char c : s)
    if (!is_alnum_lower(c) && c != '-') return false;
  return true;
}

bool is_label_value(std::string_view s) {
  if (s.empty()) return true;
  if (s.size() > 63 || !is_alnum(s.front()) || !is_alnum(s.back())) return false;
  for (char c : s)
    if (!is_alnum(c) && c != '-' && c != '_' && c != '.') return false;
  return true;
}

bool is_label_key(std::string_view s) {
  const size_t slash = s.find('/');
  std::string_view name = s;
  if (slash != std::string_view::npos) {
    if (!is_dns_subdomain(s.substr(0, slash))) return false;
    name = s.substr(slash + 1);
  }
  return !name.empty() && is_label_value(name);
}

Result<int64_t> parse_cpu_millis(std::string_view text, std::string_view field) {
  const std::string quoted = "\"" + std::string(text) + "\"";
  std::string_view num = text;
  int64_t mult = 1000;
  if (num.ends_with('m')) {
    num.remove_suffix(1);
    mult = 1;
  }
  Decimal d;
  int64_t millis = 0;
  if (!parse_decimal(num, d) || !scale(d, mult, millis))
    return Error::invalid_argument(field, quoted + " is not a CPU quantity (e.g. \"500m\", \"2\")");
  // The CFS quota is cpu * 100ms period and the kernel refuses quotas under 1ms.
  if (millis < 10) return Error::invalid_argument(field, quoted + " is below the minimum of 10m");
  if (millis > 1'000'000) return Error::invalid_argument(field, quoted + " is more than 1000 CPUs");
  return millis;
}

Result<int64_t> parse_memory_bytes(std::string_view text, std::string_view field) {
  const std::string quoted = "\"" + std::string(text) + "\"";
  static constexpr std::pair<std::string_view, int64_t> kSuffixes[] = {
      {"Ki", 1LL << 10},
      {"Mi", 1LL << 20},
      {"Gi", 1LL << 30},
      {"Ti", 1LL << 40},
      {"Pi", 1LL << 50},
      {"Ei", 1LL << 60},
      {"k", 1'000},
      {"M", 1'000'000},
      {"G", 1'000'000'000},
      {"T", 1'000'000'000'000},
      {"P", 1'000'000'000'000'000},
      {"E", 1'000'000'000'000'000'000}};
  std::string_view num = text;
  int64_t mult = 1;
  for (const auto& [suffix, m] : kSuffixes) {
    if (num.ends_with(suffix)) {
      num.remove_suffix(suffix.size());
      mult = m;
      break;
    }
  }
  Decimal d;
  int64_t bytes = 0;
  if (!parse_decimal(num, d) || !scale(d, mult, bytes))
    return Error::invalid_argument(
        field, quoted + " is not a whole number of bytes (e.g. \"128Mi\", \"1G\", \"65536\")");
  // Below a few MiB the process is killed by the OOM killer before it has started.
  if (bytes < (4LL << 20))
    return Error::invalid_argument(field, quoted + " is below the minimum of 4Mi");
  return bytes;
}

Result<std::vector<PodSpec>> parse_pods(std::string_view text, std::string_view filename) {
  const Parser parser(filename);
  std::vector<YAML::Node> docs;
  try {
    docs = YAML::LoadAll(std::string(text));
  } catch (const YAML::Exception& e) {
    // yaml-cpp reports syntax errors by exception; they end here, as an Error.
    return Error::invalid_argument(std::string(filename) + ":" + std::to_string(e.mark.line + 1),
                                   e.msg);
  }
  std::vector<PodSpec> pods;
  std::set<std::string> keys;
  for (const YAML::Node& doc : docs) {
    if (doc.IsNull()) continue;
    NQ_ASSIGN_OR_RETURN(PodSpec p, parser.pod(doc));
    if (!keys.insert(p.key()).second)
      return parser.err(doc["metadata"]["name"], "metadata.name", "duplicate pod " + p.key());
    pods.push_back(std::move(p));
  }
  return pods;
}

Result<std::vector<PodSpec>> load_pods_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return Error::from_errno(errno, "open pods file " + path.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_pods(ss.str(), path.string());
}

}  // namespace nq::sandbox
