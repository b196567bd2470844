#include <algorithm>

#include "agent/caps/probe.h"

namespace nq {

Capabilities::Capabilities(std::vector<Capability> all) : all_(std::move(all)) {}

const Capability* Capabilities::find(std::string_view name) const {
  auto it =
      std::find_if(all_.begin(), all_.end(), [&](const Capability& c) { return c.name == name; });
  return it == all_.end() ? nullptr : &*it;
}

bool Capabilities::has(std::string_view name) const {
  const Capability* c = find(name);
  return c != nullptr && c->available;
}

Status Capabilities::require(std::string_view name, std::string_view needed_for) const {
  const Capability* c = find(name);
  if (c != nullptr && c->available) return ok();
  std::string msg(needed_for);
  msg += " needs ";
  msg += name;
  msg += ", which this kernel lacks: ";
  msg += c != nullptr ? c->detail : "it was not probed";
  return Error::failed_precondition(msg);
}

}  // namespace nq
