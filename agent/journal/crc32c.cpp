// CRC-32C for the journal's record frames.
//
// Castagnoli rather than zlib's CRC-32 because it is what storage formats use
// for short records (better error detection at these lengths); no library in our
// dependency set exposes it with a stable API (abseil 20220623 predates absl/crc,
// gRPC's copy is internal), and a byte-wise table is ~20 lines and plenty fast for
// records of a few KiB written once per injection.
#include <array>

#include "agent/journal/journal.h"

namespace nq {
namespace {

constexpr uint32_t kPolyReflected = 0x82F63B78u;

constexpr std::array<uint32_t, 256> make_table() {
  std::array<uint32_t, 256> table{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int bit = 0; bit < 8; ++bit) c = (c & 1u) ? (c >> 1) ^ kPolyReflected : c >> 1;
    table[i] = c;
  }
  return table;
}

constexpr std::array<uint32_t, 256> kTable = make_table();

}  // namespace

uint32_t crc32c(std::span<const uint8_t> data, uint32_t crc) noexcept {
  crc = ~crc;
  for (uint8_t byte : data) crc = kTable[(crc ^ byte) & 0xFFu] ^ (crc >> 8);
  return ~crc;
}

}  // namespace nq
