#include "controller/experiment/diagnostics.h"

namespace nq::experiment {

std::string Diagnostic::str() const {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line);
  out += ": ";
  if (!field.empty()) out += field + ": ";
  out += message;
  return out;
}

void Diagnostics::add(int line, std::string field, std::string message) {
  items_.push_back({file_, line, std::move(field), std::move(message)});
}

Error Diagnostics::to_error() const {
  std::string msg;
  for (const Diagnostic& d : items_) {
    if (!msg.empty()) msg += "\n";
    msg += d.str();
  }
  return Error::status(Code::kInvalidArgument, msg);
}

}  // namespace nq::experiment
