// CRC-32C (Castagnoli), reflected, with pre/post inversion inside: crc32c_update(0, "123456789")
// == 0xE3069283, and crc32c_update(crc32c_update(s, a), b) == crc32c_update(s, a ‖ b). This is the
// "continue from seed" form docs/wal-format.md uses to chain frames.
#pragma once

#include <cstddef>
#include <cstdint>

namespace raftkv {

// Uses the hardware instruction when the CPU has it (SSE4.2 on x86-64, CRC on ARMv8), detected
// once at run time; otherwise the slice-by-8 software table.
uint32_t crc32c_update(uint32_t seed, const void* data, size_t length);

// Always the portable slice-by-8 implementation (the fallback, and the reference in tests).
uint32_t crc32c_update_software(uint32_t seed, const void* data, size_t length);

// The hardware implementation, or nullptr when this CPU/build has none.
using Crc32cFunction = uint32_t (*)(uint32_t, const void*, size_t);
Crc32cFunction crc32c_hardware();

// "sse4.2", "armv8-crc" or "software": what crc32c_update uses.
const char* crc32c_implementation();

}  // namespace raftkv
