// Who may call the controller's API, and what they may do.
//
// Callers authenticate with a bearer token ("authorization: Bearer <token>"
// metadata; the tokens are read from files the access file names) or with a
// verified mTLS client certificate (its identity as agent/server/auth.h
// reports it). Each token or identity has one role; roles are ordered, each
// including the ones below it:
//
//   viewer    Get, Audit, Report
//   operator  + Submit, Abort
//   sre       + everything (the kill switch has its own HTTP endpoint and token)
//
// The access file (YAML):
//
//   tokens:
//     - {name: ci, role: operator, tokenFile: /etc/nodequake/tokens/ci}
//   identities:
//     - {identity: nqctl-alice, role: sre}   # client-certificate SAN/CN
//
// The caller's identity ("token:ci", "cert:nqctl-alice") goes to the audit log.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace nq::controller {

enum class Role { kViewer = 0, kOperator = 1, kSre = 2 };
std::string_view role_name(Role role) noexcept;
// Errors name `field`.
Result<Role> parse_role(std::string_view text, std::string_view field);

struct TokenEntry {
  std::string name;
  Role role = Role::kViewer;
  std::string token_file;
  std::string token;  // filled by load_access_policy()
};

struct IdentityEntry {
  std::string identity;
  Role role = Role::kViewer;
};

struct AccessPolicy {
  std::vector<TokenEntry> tokens;
  std::vector<IdentityEntry> identities;
};

// The access file's text; token files are named, not read. Errors name the
// field ("tokens[1].role: ..."). Pure.
Result<AccessPolicy> parse_access_policy(std::string_view yaml);
// Reads the file and every token file (at least 16 characters each; a
// relative tokenFile is relative to the access file's directory).
Result<AccessPolicy> load_access_policy(const std::filesystem::path& path);

struct Caller {
  std::string identity;  // "token:<name>" or "cert:<identity>"
  Role role = Role::kViewer;
};

// `authorization`: the metadata value ("" when absent); `peer`: the verified
// client-certificate identity ("" for none, "local" for a Unix-socket peer,
// which authenticates nobody by itself). A token, when presented, decides
// (a wrong token is Unauthenticated even with a certificate); tokens are
// compared in constant time. Unauthenticated when nothing matches.
Result<Caller> authenticate(const AccessPolicy& policy, std::string_view authorization,
                            std::string_view peer);

// OK when the caller's role includes `required`; PermissionDenied naming both.
Status authorize(const Caller& caller, Role required, std::string_view what);

}  // namespace nq::controller
