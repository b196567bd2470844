// Netlink attribute (TLV) reading and writing on plain byte buffers, for tc
// messages built or taken apart without a socket (and in unit tests).
#pragma once

#include <linux/netlink.h>

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace nq::net {

struct WireAttr {
  uint16_t type = 0;      // without NLA_F_NESTED / NLA_F_NET_BYTEORDER
  uint16_t raw_type = 0;  // as on the wire, flags included
  std::span<const uint8_t> data;
};

// The attributes of `buf` in order; stops at the first malformed one.
inline std::vector<WireAttr> parse_attrs(std::span<const uint8_t> buf) {
  std::vector<WireAttr> out;
  size_t off = 0;
  while (off + NLA_HDRLEN <= buf.size()) {
    nlattr hdr;
    std::memcpy(&hdr, buf.data() + off, sizeof(hdr));
    if (hdr.nla_len < NLA_HDRLEN || off + hdr.nla_len > buf.size()) break;
    out.push_back({static_cast<uint16_t>(hdr.nla_type & NLA_TYPE_MASK), hdr.nla_type,
                   buf.subspan(off + NLA_HDRLEN, hdr.nla_len - NLA_HDRLEN)});
    off += NLA_ALIGN(hdr.nla_len);
  }
  return out;
}

// True when `buf` is exactly a sequence of attributes.
inline bool attrs_well_formed(std::span<const uint8_t> buf) {
  size_t off = 0;
  while (off + NLA_HDRLEN <= buf.size()) {
    nlattr hdr;
    std::memcpy(&hdr, buf.data() + off, sizeof(hdr));
    if (hdr.nla_len < NLA_HDRLEN || off + hdr.nla_len > buf.size()) return false;
    off += NLA_ALIGN(hdr.nla_len);
  }
  // The last attribute's padding may be missing from the buffer.
  return off >= buf.size();
}

// A NUL-terminated string attribute's value (without the NUL).
inline std::string attr_string(std::span<const uint8_t> data) {
  std::string s(reinterpret_cast<const char*>(data.data()), data.size());
  if (auto nul = s.find('\0'); nul != std::string::npos) s.resize(nul);
  return s;
}

// Appends attributes to a byte buffer, nesting included.
class AttrWriter {
 public:
  void put(uint16_t type, std::span<const uint8_t> data) { put(type, data.data(), data.size()); }
  void put(uint16_t type, const void* data, size_t len) {
    nlattr hdr{static_cast<uint16_t>(NLA_HDRLEN + len), type};
    append(&hdr, sizeof(hdr));
    append(data, len);
    buf_.resize(NLA_ALIGN(buf_.size()), 0);
  }
  template <class T>
  void put_value(uint16_t type, const T& v) {
    put(type, &v, sizeof(v));
  }
  void put_string(uint16_t type, std::string_view s) {
    std::string z(s);
    put(type, z.c_str(), z.size() + 1);
  }
  // Opens a nested attribute; close it with end_nest(returned offset).
  size_t begin_nest(uint16_t type) {
    const size_t at = buf_.size();
    nlattr hdr{NLA_HDRLEN, type};
    append(&hdr, sizeof(hdr));
    return at;
  }
  void end_nest(size_t at) {
    const auto len = static_cast<uint16_t>(buf_.size() - at);
    std::memcpy(buf_.data() + at, &len, sizeof(len));
  }
  const std::vector<uint8_t>& bytes() const { return buf_; }
  std::vector<uint8_t> take() { return std::move(buf_); }

 private:
  void append(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    buf_.insert(buf_.end(), b, b + n);
  }
  std::vector<uint8_t> buf_;
};

}  // namespace nq::net
