#include "controller/daemon/access.h"

#include <yaml-cpp/yaml.h>

#include "common/file.h"
#include "controller/killswitch/token.h"

namespace nq::controller {

std::string_view role_name(Role role) noexcept {
  switch (role) {
    case Role::kViewer:
      return "viewer";
    case Role::kOperator:
      return "operator";
    case Role::kSre:
      return "sre";
  }
  return "?";
}

Result<Role> parse_role(std::string_view text, std::string_view field) {
  if (text == "viewer") return Role::kViewer;
  if (text == "operator") return Role::kOperator;
  if (text == "sre") return Role::kSre;
  return Error::invalid_argument(
      field, "\"" + std::string(text) + "\": unknown role (viewer, operator, sre)");
}

namespace {

Result<std::string> required_string(const YAML::Node& node, const std::string& key,
                                    const std::string& field) {
  const YAML::Node v = node[key];
  if (!v || !v.IsScalar() || v.Scalar().empty())
    return Error::invalid_argument(field + "." + key, "is required");
  return v.Scalar();
}

Status check_keys(const YAML::Node& node, std::initializer_list<std::string_view> known,
                  const std::string& field) {
  if (!node.IsMap()) return Error::invalid_argument(field, "must be a map");
  for (const auto& kv : node) {
    const std::string key = kv.first.Scalar();
    bool found = false;
    for (auto k : known) found = found || key == k;
    if (!found) return Error::invalid_argument(field + "." + key, "unknown field");
  }
  return ok();
}

}  // namespace

Result<AccessPolicy> parse_access_policy(std::string_view yaml) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    // yaml-cpp reports syntax errors only by exception; they stop here.
    return Error::invalid_argument("access file", e.what());
  }
  AccessPolicy policy;
  if (!root || root.IsNull()) return policy;
  NQ_TRY(check_keys(root, {"tokens", "identities"}, "access file"));
  if (const YAML::Node tokens = root["tokens"]) {
    if (!tokens.IsSequence()) return Error::invalid_argument("tokens", "must be a list");
    for (size_t i = 0; i < tokens.size(); ++i) {
      const std::string field = "tokens[" + std::to_string(i) + "]";
      NQ_TRY(check_keys(tokens[i], {"name", "role", "tokenFile"}, field));
      TokenEntry e;
      NQ_ASSIGN_OR_RETURN(e.name, required_string(tokens[i], "name", field));
      NQ_ASSIGN_OR_RETURN(std::string role, required_string(tokens[i], "role", field));
      NQ_ASSIGN_OR_RETURN(e.role, parse_role(role, field + ".role"));
      NQ_ASSIGN_OR_RETURN(e.token_file, required_string(tokens[i], "tokenFile", field));
      for (const auto& other : policy.tokens)
        if (other.name == e.name)
          return Error::invalid_argument(field + ".name", "\"" + e.name + "\" given twice");
      policy.tokens.push_back(std::move(e));
    }
  }
  if (const YAML::Node ids = root["identities"]) {
    if (!ids.IsSequence()) return Error::invalid_argument("identities", "must be a list");
    for (size_t i = 0; i < ids.size(); ++i) {
      const std::string field = "identities[" + std::to_string(i) + "]";
      NQ_TRY(check_keys(ids[i], {"identity", "role"}, field));
      IdentityEntry e;
      NQ_ASSIGN_OR_RETURN(e.identity, required_string(ids[i], "identity", field));
      NQ_ASSIGN_OR_RETURN(std::string role, required_string(ids[i], "role", field));
      NQ_ASSIGN_OR_RETURN(e.role, parse_role(role, field + ".role"));
      policy.identities.push_back(std::move(e));
    }
  }
  return policy;
}

Result<AccessPolicy> load_access_policy(const std::filesystem::path& path) {
  NQ_ASSIGN_OR_RETURN(std::string text, read_file(path.string()));
  auto policy = parse_access_policy(text);
  if (!policy.ok()) return std::move(policy).error().wrapped(path.string());
  for (auto& t : policy->tokens) {
    std::filesystem::path file = t.token_file;
    if (file.is_relative()) file = path.parent_path() / file;
    auto token = killswitch::read_token_file(file);
    if (!token.ok()) return std::move(token).error().wrapped(path.string() + ": token " + t.name);
    t.token = std::move(*token);
  }
  return policy;
}

Result<Caller> authenticate(const AccessPolicy& policy, std::string_view authorization,
                            std::string_view peer) {
  if (!authorization.empty()) {
    const auto presented = killswitch::bearer_token(authorization);
    if (presented) {
      // Compare against every token, not stopping at the match, so the
      // timing does not tell which entry matched either.
      const TokenEntry* match = nullptr;
      for (const auto& t : policy.tokens)
        if (killswitch::token_matches(*presented, t.token) && !match) match = &t;
      if (match) return Caller{"token:" + match->name, match->role};
    }
    return Error::status(Code::kUnauthenticated, "the bearer token is not valid");
  }
  if (!peer.empty() && peer != "local")
    for (const auto& id : policy.identities)
      if (id.identity == peer) return Caller{"cert:" + id.identity, id.role};
  if (!peer.empty() && peer != "local")
    return Error::status(Code::kUnauthenticated,
                         "client certificate \"" + std::string(peer) + "\" has no role");
  return Error::status(Code::kUnauthenticated,
                       "no credentials: send \"authorization: Bearer <token>\" "
                       "(nqctl --token-file) or use a client certificate");
}

Status authorize(const Caller& caller, Role required, std::string_view what) {
  if (static_cast<int>(caller.role) >= static_cast<int>(required)) return ok();
  return Error::status(Code::kPermissionDenied,
                       std::string(what) + " needs role " + std::string(role_name(required)) +
                           "; " + caller.identity + " has " + std::string(role_name(caller.role)));
}

}  // namespace nq::controller
