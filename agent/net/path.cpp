#include "agent/net/path.h"

#include <net/if.h>

#include "nodequake/v1/agent.pb.h"

namespace nq::net {
namespace {

Result<std::vector<PortRange>> ports_from_proto(
    const google::protobuf::RepeatedPtrField<nodequake::v1::PortRange>& in,
    const std::string& field, Proto proto) {
  if (static_cast<size_t>(in.size()) > kMaxPortRanges)
    return Error::invalid_argument(
        field, "at most " + std::to_string(kMaxPortRanges) + " port ranges are supported");
  if (!in.empty() && proto != Proto::kTcp && proto != Proto::kUdp && proto != Proto::kAny)
    return Error::invalid_argument(field, "ports need protocol TCP, UDP or ANY");
  std::vector<PortRange> out;
  for (int i = 0; i < in.size(); ++i) {
    const std::string f = field + "[" + std::to_string(i) + "]";
    const auto& r = in.Get(i);
    const uint32_t last = r.last() == 0 ? r.first() : r.last();
    if (r.first() == 0 || r.first() > 65535)
      return Error::invalid_argument(f + ".first",
                                     std::to_string(r.first()) + " is not a port 1..65535");
    if (last > 65535 || last < r.first())
      return Error::invalid_argument(f + ".last", std::to_string(last) + " must be within " +
                                                      std::to_string(r.first()) + "..65535");
    out.push_back({static_cast<uint16_t>(r.first()), static_cast<uint16_t>(last)});
  }
  return out;
}

Result<std::vector<Cidr>> cidrs_from_proto(
    const google::protobuf::RepeatedPtrField<std::string>& in, const std::string& field) {
  if (static_cast<size_t>(in.size()) > kMaxCidrsPerScope)
    return Error::invalid_argument(
        field, "at most " + std::to_string(kMaxCidrsPerScope) + " CIDRs are supported");
  std::vector<Cidr> out;
  for (int i = 0; i < in.size(); ++i) {
    NQ_ASSIGN_OR_RETURN(Cidr c, parse_cidr(in.Get(i), field + "[" + std::to_string(i) + "]"));
    out.push_back(c);
  }
  return out;
}

}  // namespace

Result<Path> path_from_proto(const nodequake::v1::NetworkPath& proto, const std::string& field) {
  Path path;
  switch (proto.direction()) {
    case nodequake::v1::DIRECTION_UNSPECIFIED:
    case nodequake::v1::DIRECTION_TO:
      path.dirs = kEgress;
      break;
    case nodequake::v1::DIRECTION_FROM:
      path.dirs = kIngress;
      break;
    case nodequake::v1::DIRECTION_BOTH:
      path.dirs = kBoth;
      break;
    default:
      return Error::invalid_argument(field + ".direction",
                                     "unknown value " + std::to_string(proto.direction()));
  }
  if (!proto.interface().empty()) {
    if (proto.interface().size() >= IFNAMSIZ || proto.interface().find('/') != std::string::npos)
      return Error::invalid_argument(field + ".interface",
                                     "\"" + proto.interface() + "\" is not an interface name");
    path.ifname = proto.interface();
  }
  const auto& s = proto.scope();
  switch (s.protocol()) {
    case nodequake::v1::PROTOCOL_ANY:
      path.scope.proto = Proto::kAny;
      break;
    case nodequake::v1::PROTOCOL_TCP:
      path.scope.proto = Proto::kTcp;
      break;
    case nodequake::v1::PROTOCOL_UDP:
      path.scope.proto = Proto::kUdp;
      break;
    case nodequake::v1::PROTOCOL_ICMP:
      path.scope.proto = Proto::kIcmp;
      break;
    default:
      return Error::invalid_argument(field + ".scope.protocol",
                                     "unknown value " + std::to_string(s.protocol()));
  }
  NQ_ASSIGN_OR_RETURN(path.scope.remote,
                      cidrs_from_proto(s.remote_cidrs(), field + ".scope.remote_cidrs"));
  NQ_ASSIGN_OR_RETURN(path.scope.local,
                      cidrs_from_proto(s.local_cidrs(), field + ".scope.local_cidrs"));
  NQ_ASSIGN_OR_RETURN(
      path.scope.remote_ports,
      ports_from_proto(s.remote_ports(), field + ".scope.remote_ports", path.scope.proto));
  NQ_ASSIGN_OR_RETURN(
      path.scope.local_ports,
      ports_from_proto(s.local_ports(), field + ".scope.local_ports", path.scope.proto));
  return path;
}

}  // namespace nq::net
