#include <cstring>
#include <random>
#include <vector>

#include "crc32c.h"
#include "harness.h"

using raftkv::crc32c_update;
using raftkv::crc32c_update_software;

TEST("crc32c: known vectors (RFC 3720 / iSCSI) in the active and the software implementation") {
  struct Vector {
    std::vector<uint8_t> data;
    uint32_t crc;
  };
  std::vector<Vector> vectors;
  const char* digits = "123456789";
  vectors.push_back({std::vector<uint8_t>(digits, digits + 9), 0xE3069283u});
  vectors.push_back({std::vector<uint8_t>(32, 0x00), 0x8A9136AAu});
  vectors.push_back({std::vector<uint8_t>(32, 0xFF), 0x62A8AB43u});
  std::vector<uint8_t> ascending(32), descending(32);
  for (int i = 0; i < 32; i++) {
    ascending[i] = static_cast<uint8_t>(i);
    descending[i] = static_cast<uint8_t>(31 - i);
  }
  vectors.push_back({ascending, 0x46DD794Eu});
  vectors.push_back({descending, 0x113FDB5Cu});
  vectors.push_back({{}, 0u});
  for (const Vector& v : vectors) {
    CHECK_EQ(crc32c_update(0, v.data.data(), v.data.size()), v.crc);
    CHECK_EQ(crc32c_update_software(0, v.data.data(), v.data.size()), v.crc);
    if (raftkv::crc32c_hardware() != nullptr) {
      CHECK_EQ(raftkv::crc32c_hardware()(0, v.data.data(), v.data.size()), v.crc);
    }
  }
  std::fprintf(stderr, "    (active implementation: %s)\n", raftkv::crc32c_implementation());
}

TEST("crc32c: hardware equals software for random data, lengths, alignments and seeds") {
  std::mt19937 rng(12345);
  std::vector<uint8_t> data(70000);
  for (uint8_t& b : data) b = static_cast<uint8_t>(rng());
  raftkv::Crc32cFunction hw = raftkv::crc32c_hardware();
  for (int round = 0; round < 2000; round++) {
    size_t start = rng() % 64;
    size_t length = round < 600 ? static_cast<size_t>(round % 300) : rng() % (data.size() - 64);
    uint32_t seed = static_cast<uint32_t>(rng());
    uint32_t sw = crc32c_update_software(seed, data.data() + start, length);
    CHECK_EQ(crc32c_update(seed, data.data() + start, length), sw);
    if (hw != nullptr) CHECK_EQ(hw(seed, data.data() + start, length), sw);
  }
}

TEST("crc32c: continuing from a seed equals one pass over the concatenation") {
  std::mt19937 rng(99);
  std::vector<uint8_t> data(5000);
  for (uint8_t& b : data) b = static_cast<uint8_t>(rng());
  uint32_t whole = crc32c_update(7, data.data(), data.size());
  for (size_t split : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{4095}, size_t{5000}}) {
    uint32_t first = crc32c_update(7, data.data(), split);
    CHECK_EQ(crc32c_update(first, data.data() + split, data.size() - split), whole);
    uint32_t first_sw = crc32c_update_software(7, data.data(), split);
    CHECK_EQ(crc32c_update_software(first_sw, data.data() + split, data.size() - split), whole);
  }
}

TEST("crc32c: hardware equals software around the interleaved block boundaries") {
  // The x86-64 path runs 3 interleaved streams over 3 x 8192 and 3 x 1344 byte runs once the
  // (8-aligned) input reaches 4032 bytes; check lengths around every such boundary, at every
  // misalignment of the start (which moves the aligned part), with random seeds.
  std::mt19937 rng(4032);
  std::vector<uint8_t> data(3 * 24576 + 4096);
  for (uint8_t& b : data) b = static_cast<uint8_t>(rng());
  raftkv::Crc32cFunction hw = raftkv::crc32c_hardware();
  const size_t bases[] = {4032, 4096, 4096 + 12, 2 * 4032, 3 * 4032, 24576, 24576 + 4032,
                          24576 + 2 * 4032, 2 * 24576, 2 * 24576 + 4032, 3 * 24576};
  size_t checked = 0;
  for (size_t base : bases) {
    for (size_t delta = 0; delta <= 34; delta++) {
      for (size_t length : {base - 17 + delta}) {
        for (size_t start = 0; start < 9; start++) {
          if (start + length > data.size()) continue;
          uint32_t seed = static_cast<uint32_t>(rng());
          uint32_t sw = crc32c_update_software(seed, data.data() + start, length);
          CHECK_EQ(crc32c_update(seed, data.data() + start, length), sw);
          if (hw != nullptr) CHECK_EQ(hw(seed, data.data() + start, length), sw);
          checked++;
        }
      }
    }
  }
  CHECK(checked > 3000);
  // A long input split at arbitrary points still chains to the one-pass value.
  uint32_t whole = crc32c_update(3, data.data(), data.size());
  CHECK_EQ(whole, crc32c_update_software(3, data.data(), data.size()));
  for (size_t split : {size_t{4031}, size_t{4033}, size_t{24575}, size_t{24577}, size_t{50000}}) {
    uint32_t first = crc32c_update(3, data.data(), split);
    CHECK_EQ(crc32c_update(first, data.data() + split, data.size() - split), whole);
  }
}
