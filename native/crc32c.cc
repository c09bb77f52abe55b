#include "crc32c.h"

#include <cstring>

#if defined(__x86_64__)
#include <nmmintrin.h>
#elif defined(__aarch64__)
#include <arm_acle.h>
#include <sys/auxv.h>
#ifndef HWCAP_CRC32
#define HWCAP_CRC32 (1 << 7)
#endif
#endif

namespace raftkv {
namespace {

constexpr uint32_t kPolyReflected = 0x82F63B78u;

struct Tables {
  // table[k][b]: contribution of byte b followed by k zero bytes.
  uint32_t table[8][256];
  Tables() {
    for (uint32_t b = 0; b < 256; b++) {
      uint32_t crc = b;
      for (int bit = 0; bit < 8; bit++) crc = (crc & 1) ? (crc >> 1) ^ kPolyReflected : crc >> 1;
      table[0][b] = crc;
    }
    for (int k = 1; k < 8; k++) {
      for (uint32_t b = 0; b < 256; b++) {
        uint32_t previous = table[k - 1][b];
        table[k][b] = (previous >> 8) ^ table[0][previous & 0xFF];
      }
    }
  }
};

const Tables& tables() {
  static const Tables instance;
  return instance;
}

inline uint64_t load_le64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);  // little-endian hosts only (x86-64, aarch64 Linux)
  return v;
}

#if defined(__x86_64__)
// Shifting a raw crc register (no pre/post inversion) over `Bytes` zero bytes is linear over
// GF(2), so it is four table lookups: table[k][b] is the shift of byte b placed at byte k.
// That lets independent crc streams over adjacent blocks be combined:
//   raw(r, A ‖ B) = shift_|B|(raw(r, A)) ^ raw(0, B).
template <size_t Bytes>
struct ShiftTable {
  uint32_t table[4][256];
  ShiftTable() {
    const uint32_t* byte_table = tables().table[0];
    uint32_t basis[32];  // image of each single-bit register
    for (int bit = 0; bit < 32; bit++) {
      uint32_t crc = uint32_t{1} << bit;
      for (size_t i = 0; i < Bytes; i++) crc = (crc >> 8) ^ byte_table[crc & 0xFF];
      basis[bit] = crc;
    }
    for (int k = 0; k < 4; k++) {
      for (uint32_t b = 0; b < 256; b++) {
        uint32_t image = 0;
        for (int bit = 0; bit < 8; bit++) {
          if (b & (1u << bit)) image ^= basis[8 * k + bit];
        }
        table[k][b] = image;
      }
    }
  }
  uint32_t shift(uint32_t crc) const {
    return table[0][crc & 0xFF] ^ table[1][(crc >> 8) & 0xFF] ^ table[2][(crc >> 16) & 0xFF] ^
           table[3][crc >> 24];
  }
};

// Block sizes of the 3-way interleaved loops (multiples of 8). The crc32 instruction has a
// latency of 3 cycles but a throughput of one per cycle, so one dependent chain runs at a third
// of the possible speed; three independent chains over adjacent blocks fill the pipeline.
// 3 x 1344 = 4032 bytes: a 4 KiB record payload takes the interleaved path once.
constexpr size_t kLongBlock = 8192;
constexpr size_t kShortBlock = 1344;

const ShiftTable<kLongBlock>& long_shift() {
  static const ShiftTable<kLongBlock> instance;
  return instance;
}

const ShiftTable<kShortBlock>& short_shift() {
  static const ShiftTable<kShortBlock> instance;
  return instance;
}

// Consumes as many runs of 3 x Block bytes as fit; p must be 8-byte aligned.
template <size_t Block>
__attribute__((target("sse4.2"))) inline uint64_t crc32c_sse42_interleaved(
    uint64_t crc, const uint8_t*& p, size_t& length, const ShiftTable<Block>& shift) {
  static_assert(Block % 8 == 0, "blocks are whole 8-byte words");
  while (length >= 3 * Block) {
    uint64_t crc1 = 0;
    uint64_t crc2 = 0;
    const uint8_t* end = p + Block;
    do {
      crc = _mm_crc32_u64(crc, load_le64(p));
      crc1 = _mm_crc32_u64(crc1, load_le64(p + Block));
      crc2 = _mm_crc32_u64(crc2, load_le64(p + 2 * Block));
      p += 8;
    } while (p < end);
    crc = shift.shift(static_cast<uint32_t>(crc)) ^ crc1;
    crc = shift.shift(static_cast<uint32_t>(crc)) ^ crc2;
    p += 2 * Block;
    length -= 3 * Block;
  }
  return crc;
}

__attribute__((target("sse4.2"))) uint32_t crc32c_sse42(uint32_t seed, const void* data,
                                                          size_t length) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint64_t crc = static_cast<uint32_t>(~seed);
  while (length > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    crc = _mm_crc32_u8(static_cast<uint32_t>(crc), *p++);
    length--;
  }
  if (length >= 3 * kShortBlock) {
    crc = crc32c_sse42_interleaved(crc, p, length, long_shift());
    crc = crc32c_sse42_interleaved(crc, p, length, short_shift());
  }
  while (length >= 8) {
    crc = _mm_crc32_u64(crc, load_le64(p));
    p += 8;
    length -= 8;
  }
  while (length > 0) {
    crc = _mm_crc32_u8(static_cast<uint32_t>(crc), *p++);
    length--;
  }
  return ~static_cast<uint32_t>(crc);
}
#elif defined(__aarch64__)
__attribute__((target("+crc"))) uint32_t crc32c_armv8(uint32_t seed, const void* data,
                                                       size_t length) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint32_t crc = ~seed;
  while (length > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    crc = __crc32cb(crc, *p++);
    length--;
  }
  while (length >= 8) {
    crc = __crc32cd(crc, load_le64(p));
    p += 8;
    length -= 8;
  }
  while (length > 0) {
    crc = __crc32cb(crc, *p++);
    length--;
  }
  return ~crc;
}
#endif

Crc32cFunction detect_hardware() {
#if defined(__x86_64__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("sse4.2")) return crc32c_sse42;
#elif defined(__aarch64__)
  if (getauxval(AT_HWCAP) & HWCAP_CRC32) return crc32c_armv8;
#endif
  return nullptr;
}

Crc32cFunction hardware_function() {
  static const Crc32cFunction fn = detect_hardware();
  return fn;
}

Crc32cFunction active_function() {
  static const Crc32cFunction fn = hardware_function() ? hardware_function() : crc32c_update_software;
  return fn;
}

}  // namespace

uint32_t crc32c_update_software(uint32_t seed, const void* data, size_t length) {
  const Tables& t = tables();
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint32_t crc = ~seed;
  while (length > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    crc = (crc >> 8) ^ t.table[0][(crc ^ *p++) & 0xFF];
    length--;
  }
  while (length >= 8) {
    uint64_t word = load_le64(p) ^ crc;
    crc = t.table[7][word & 0xFF] ^ t.table[6][(word >> 8) & 0xFF] ^
          t.table[5][(word >> 16) & 0xFF] ^ t.table[4][(word >> 24) & 0xFF] ^
          t.table[3][(word >> 32) & 0xFF] ^ t.table[2][(word >> 40) & 0xFF] ^
          t.table[1][(word >> 48) & 0xFF] ^ t.table[0][word >> 56];
    p += 8;
    length -= 8;
  }
  while (length > 0) {
    crc = (crc >> 8) ^ t.table[0][(crc ^ *p++) & 0xFF];
    length--;
  }
  return ~crc;
}

Crc32cFunction crc32c_hardware() { return hardware_function(); }

uint32_t crc32c_update(uint32_t seed, const void* data, size_t length) {
  return active_function()(seed, data, length);
}

const char* crc32c_implementation() {
#if defined(__x86_64__)
  if (hardware_function()) return "sse4.2";
#elif defined(__aarch64__)
  if (hardware_function()) return "armv8-crc";
#endif
  return "software";
}

}  // namespace raftkv
