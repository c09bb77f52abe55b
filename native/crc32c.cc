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
__attribute__((target("sse4.2"))) uint32_t crc32c_sse42(uint32_t seed, const void* data,
                                                          size_t length) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  uint64_t crc = static_cast<uint32_t>(~seed);
  while (length > 0 && (reinterpret_cast<uintptr_t>(p) & 7) != 0) {
    crc = _mm_crc32_u8(static_cast<uint32_t>(crc), *p++);
    length--;
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
