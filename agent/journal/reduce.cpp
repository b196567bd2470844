// The journal's records folded into the set of things possibly live in the kernel.
#include "agent/journal/journal.h"

namespace nq {

void reduce_into(JournalState& state, const journal::Record& record) {
  switch (record.entry_case()) {
    case journal::Record::kBegun:
      state.injections.insert_or_assign(record.begun().injection().id(), record.begun());
      break;
    case journal::Record::kEnded:
      state.injections.erase(record.ended().id());
      break;
    case journal::Record::kLinkOwned:
      state.links.insert_or_assign(record.link_owned().key(), record.link_owned());
      break;
    case journal::Record::kLinkReleased:
      state.links.erase(record.link_released().key());
      break;
    case journal::Record::kResourceOwned:
      state.resources.insert_or_assign(record.resource_owned().key(), record.resource_owned());
      break;
    case journal::Record::kResourceReleased:
      state.resources.erase(record.resource_released().key());
      break;
    case journal::Record::kKillswitch:
      state.killswitch = record.killswitch().status();
      break;
    case journal::Record::ENTRY_NOT_SET:
      // Written by a newer agent: nothing this build could revert.
      break;
  }
}

JournalState reduce(const std::vector<journal::Record>& records) {
  JournalState state;
  for (const journal::Record& record : records) reduce_into(state, record);
  return state;
}

std::vector<journal::Record> to_records(const JournalState& state) {
  std::vector<journal::Record> out;
  out.reserve(state.links.size() + state.resources.size() + state.injections.size() + 1);
  for (const auto& [key, link] : state.links) *out.emplace_back().mutable_link_owned() = link;
  for (const auto& [key, res] : state.resources) *out.emplace_back().mutable_resource_owned() = res;
  for (const auto& [id, begun] : state.injections) *out.emplace_back().mutable_begun() = begun;
  if (state.killswitch)
    *out.emplace_back().mutable_killswitch()->mutable_status() = *state.killswitch;
  return out;
}

}  // namespace nq
