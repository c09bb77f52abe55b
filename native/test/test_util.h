// Helpers shared by the C++ tests: building well-formed segment bytes in memory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "format.h"

namespace testutil {

inline std::vector<uint8_t> header_payload(uint32_t salt, uint32_t prev_crc, uint32_t block_size = 0) {
  std::vector<uint8_t> p(raftkv::kSegmentHeaderPayloadBytes, 0);
  std::memcpy(p.data(), raftkv::kSegmentMagic, 8);
  raftkv::write_u32(p.data() + 8, raftkv::kFormatVersion);
  raftkv::write_u32(p.data() + 12, block_size);
  raftkv::write_u32(p.data() + 32, salt);
  raftkv::write_u32(p.data() + 36, prev_crc);
  return p;
}

// Appends one sealed frame to `out`, continuing the chain in *crc. Returns the frame offset.
inline uint64_t add_frame(std::vector<uint8_t>* out, uint8_t type, const std::vector<uint8_t>& payload,
                          uint32_t salt, uint32_t* crc) {
  uint64_t at = out->size();
  out->resize(at + raftkv::frame_bytes(static_cast<uint32_t>(payload.size())));
  raftkv::encode_frame_unsealed(out->data() + at, type, payload.data(),
                                static_cast<uint32_t>(payload.size()));
  *crc = raftkv::seal_frame(out->data() + at, *crc, salt);
  return at;
}

inline std::vector<uint8_t> payload_of(size_t length, uint8_t fill) {
  std::vector<uint8_t> p(length);
  for (size_t i = 0; i < length; i++) p[i] = static_cast<uint8_t>(fill + i * 7);
  return p;
}

// Appends a sealed COMMIT frame (closing a batch, stating `durable`) at the end of `out`, which
// is also its file offset. Returns that offset.
inline uint64_t add_commit(std::vector<uint8_t>* out, uint32_t salt, uint32_t* crc, uint64_t durable) {
  uint64_t at = out->size();
  std::vector<uint8_t> payload(raftkv::kCommitPayloadBytes, 0);
  raftkv::write_u64(payload.data() + raftkv::kCommitDurableOffsetAt, durable);
  out->resize(at + raftkv::kCommitFrameBytes);
  raftkv::encode_frame_unsealed(out->data() + at, raftkv::kTypeCommit, payload.data(), raftkv::kCommitPayloadBytes);
  *crc = raftkv::seal_commit(out->data() + at, at, *crc, salt);
  return at;
}

struct BuiltSegment {
  std::vector<uint8_t> bytes;
  std::vector<uint64_t> offsets;  // of every frame, header and COMMIT frames included
  std::vector<uint64_t> records;  // of the header and every entry (each followed by a COMMIT)
  uint32_t last_crc = 0;
};

// A segment as the backends write it for synced appends of one record each: header + COMMIT,
// then `count` ENTRY frames of varied sizes, each + COMMIT stating the previous batch's end.
inline BuiltSegment build_segment(uint32_t salt, uint32_t prev_crc, int count) {
  BuiltSegment s;
  uint32_t crc = prev_crc;
  s.offsets.push_back(add_frame(&s.bytes, raftkv::kTypeSegmentHeader, header_payload(salt, prev_crc), salt, &crc));
  s.records.push_back(s.offsets.back());
  s.offsets.push_back(add_commit(&s.bytes, salt, &crc, 0));
  for (int i = 0; i < count; i++) {
    uint64_t durable = s.bytes.size();
    s.offsets.push_back(add_frame(&s.bytes, 3, payload_of(1 + (i * 37) % 200, static_cast<uint8_t>(i)), salt, &crc));
    s.records.push_back(s.offsets.back());
    s.offsets.push_back(add_commit(&s.bytes, salt, &crc, durable));
  }
  s.last_crc = crc;
  return s;
}

}  // namespace testutil
