#include "format.h"

#include "crc32c.h"

namespace raftkv {

void encode_frame_unsealed(uint8_t* out, uint8_t type, const uint8_t* payload, uint32_t length) {
  write_u32(out, length);
  out[4] = type;
  std::memset(out + 5, 0, kFrameHeaderBytes - 5);
  if (length > 0) std::memcpy(out + kFrameHeaderBytes, payload, length);
  uint64_t padding = round_up8(length) - length;
  if (padding > 0) std::memset(out + kFrameHeaderBytes + length, 0, padding);
}

uint32_t frame_crc(const uint8_t* frame, uint32_t payload_length, uint32_t prev_crc, uint32_t salt) {
  uint8_t prefix[12];
  write_u32(prefix, salt);
  std::memcpy(prefix + 4, frame, 8);
  uint32_t crc = crc32c_update(prev_crc, prefix, sizeof prefix);
  return crc32c_update(crc, frame + kFrameHeaderBytes, payload_length);
}

uint32_t seal_frame(uint8_t* frame, uint32_t prev_crc, uint32_t salt) {
  uint32_t crc = frame_crc(frame, read_u32(frame), prev_crc, salt);
  write_u32(frame + 8, crc);
  return crc;
}

uint64_t pad_frame_bytes(uint64_t end, uint32_t block_size) {
  if (block_size == 0) return 0;
  uint64_t gap = (block_size - end % block_size) % block_size;
  if (gap == 0) return 0;
  while (gap < kFrameHeaderBytes + 8) gap += block_size;
  return gap;
}

const char* stop_reason_name(StopReason reason) {
  switch (reason) {
    case StopReason::kEof: return "eof";
    case StopReason::kZero: return "zero";
    case StopReason::kTorn: return "torn";
    case StopReason::kCrc: return "crc";
    case StopReason::kLength: return "length";
  }
  return "?";
}

bool all_zero(const uint8_t* bytes, uint64_t from, uint64_t to) {
  if (from >= to) return true;
  if (bytes[from] != 0) return false;
  return std::memcmp(bytes + from, bytes + from + 1, to - from - 1) == 0;
}

namespace {
bool is_record_type(uint8_t type) { return type >= kTypeSegmentHeader && type <= kTypeMax; }
}  // namespace

int64_t whole_frame_length(const uint8_t* bytes, uint64_t size, uint64_t at) {
  if (at > size || size - at < kFrameHeaderBytes) return -1;
  uint32_t length = read_u32(bytes + at);
  if (length == 0 || length > kRecordBytesMax) return -1;
  if (frame_bytes(length) > size - at) return -1;
  return length;
}

bool frame_header_fields_valid(const uint8_t* frame) {
  return is_record_type(frame[4]) && frame[5] == 0 && frame[6] == 0 && frame[7] == 0 &&
         read_u32(frame + 12) == 0;
}

namespace {

// Index of the first non-zero byte in [from, to), or -1. Checks 4 KiB chunks with all_zero
// first: zero tails can be 64 MiB.
int64_t first_non_zero(const uint8_t* bytes, uint64_t from, uint64_t to) {
  constexpr uint64_t kChunk = 4096;
  uint64_t at = from;
  while (at < to) {
    uint64_t chunk_end = to - at > kChunk ? at + kChunk : to;
    if (!all_zero(bytes, at, chunk_end)) {
      for (uint64_t i = at; i < chunk_end; i++) {
        if (bytes[i] != 0) return static_cast<int64_t>(i);
      }
    }
    at = chunk_end;
  }
  return -1;
}

// Payload length of a plausible frame at `at` (whole, header fields sane), or -1.
int64_t plausible_frame_length(const uint8_t* bytes, uint64_t size, uint64_t at) {
  int64_t length = whole_frame_length(bytes, size, at);
  if (length < 0 || !frame_header_fields_valid(bytes + at)) return -1;
  return length;
}

bool frame_validates(const uint8_t* bytes, uint64_t at, uint32_t length, uint32_t seed,
                     uint32_t salt) {
  return frame_crc(bytes + at, length, seed, salt) == read_u32(bytes + at + 8);
}

// Does any frame at or after `from` validate against the chain? A frame validates when its crc
// matches using as seed the stored crc of the plausible frame right before it, or (stop_seed)
// the stored crc of the stopped frame itself, whose crc field survives a corrupted length.
bool later_frame_validates(const uint8_t* bytes, uint64_t size, uint64_t from, uint32_t salt,
                           const uint32_t* stop_seed) {
  for (uint64_t at = from; at + kFrameHeaderBytes <= size; at += 8) {
    int64_t length = plausible_frame_length(bytes, size, at);
    if (length < 0) continue;
    if (stop_seed != nullptr && at > from &&
        frame_validates(bytes, at, static_cast<uint32_t>(length), *stop_seed, salt)) {
      return true;
    }
    uint64_t next = at + frame_bytes(static_cast<uint32_t>(length));
    int64_t next_length = plausible_frame_length(bytes, size, next);
    if (next_length > 0 && frame_validates(bytes, next, static_cast<uint32_t>(next_length),
                                           read_u32(bytes + at + 8), salt)) {
      return true;
    }
  }
  return false;
}

}  // namespace

ScanOutcome scan_frames(const uint8_t* bytes, uint64_t size, uint32_t prev_crc) {
  ScanOutcome out;
  uint32_t chain_crc = prev_crc;
  uint32_t salt = 0;
  uint64_t offset = 0;

  auto finish = [&](StopReason reason, bool followed, std::string detail) {
    out.valid_end_offset = offset;
    out.last_crc = chain_crc;
    out.reason = reason;
    out.stop_offset = offset;
    out.followed_by_valid = followed;
    out.detail = std::move(detail);
    return out;
  };
  // Before the header frame validated, the best guess for the salt is what its bytes say.
  auto salt_for_search = [&]() -> uint32_t {
    if (!out.frames.empty() || size < kFrameHeaderBytes + kHeaderSaltOffset + 4) return salt;
    return read_u32(bytes + kFrameHeaderBytes + kHeaderSaltOffset);
  };
  auto at = [](uint64_t n) { return std::to_string(n); };

  for (;;) {
    uint64_t remaining = size - offset;
    if (remaining == 0) return finish(StopReason::kEof, false, "end of file at offset " + at(offset));

    bool short_word = remaining < 4;
    uint32_t length = short_word ? 0 : read_u32(bytes + offset);
    if ((!short_word && length == 0) || (short_word && all_zero(bytes, offset, size))) {
      int64_t non_zero_at = first_non_zero(bytes, offset, size);
      if (non_zero_at < 0) {
        return finish(StopReason::kZero, false,
                      "zero tail from offset " + at(offset) + " to end of file");
      }
      uint64_t nz = static_cast<uint64_t>(non_zero_at);
      if (nz < offset + kFrameHeaderBytes && offset + kFrameHeaderBytes <= size) {
        bool followed = later_frame_validates(bytes, size, offset + 8, salt_for_search(), nullptr);
        return finish(StopReason::kLength, followed,
                      "frame at offset " + at(offset) + " has length 0 but non-zero header bytes");
      }
      if (later_frame_validates(bytes, size, offset + 8, salt_for_search(), nullptr)) {
        return finish(StopReason::kLength, true,
                      "zero length word at offset " + at(offset) +
                          ", but valid frames follow (a hole in the log)");
      }
      return finish(StopReason::kTorn, false,
                    "zero length word at offset " + at(offset) +
                        " followed by non-zero bytes at offset " + at(nz) +
                        " that form no valid frame");
    }
    if (remaining < kFrameHeaderBytes) {
      return finish(StopReason::kTorn, false,
                    "frame header at offset " + at(offset) + " cut off by end of file (" +
                        at(remaining) + " of 16 bytes)");
    }

    uint8_t type = bytes[offset + 4];
    uint32_t stored_crc = read_u32(bytes + offset + 8);
    std::string bad_header;
    if (length > kRecordBytesMax) {
      bad_header = "length " + at(length) + " exceeds RECORD_BYTES_MAX " + at(kRecordBytesMax);
    } else if (bytes[offset + 5] != 0 || bytes[offset + 6] != 0 || bytes[offset + 7] != 0) {
      bad_header = "non-zero reserved bytes 5..7";
    } else if (read_u32(bytes + offset + 12) != 0) {
      bad_header = "non-zero reserved bytes 12..15";
    } else if (!is_record_type(type)) {
      bad_header = "unknown record type " + at(type);
    } else if (offset == 0 && type != kTypeSegmentHeader) {
      bad_header = "first frame has type " + at(type) + ", not SEGMENT_HEADER";
    } else if (offset == 0 && length != kSegmentHeaderPayloadBytes) {
      bad_header = "SEGMENT_HEADER frame has length " + at(length) + ", not 40";
    } else if (offset != 0 && type == kTypeSegmentHeader) {
      bad_header = "SEGMENT_HEADER frame after the start of the segment";
    }
    if (!bad_header.empty()) {
      bool followed = later_frame_validates(bytes, size, offset + 8, salt_for_search(), &stored_crc);
      return finish(StopReason::kLength, followed,
                    "bad frame header at offset " + at(offset) + ": " + bad_header);
    }

    uint64_t frame_size = frame_bytes(length);
    if (frame_size > remaining) {
      if (later_frame_validates(bytes, size, offset + 8, salt_for_search(), &stored_crc)) {
        return finish(StopReason::kLength, true,
                      "frame at offset " + at(offset) + " claims " + at(length) +
                          " payload bytes, past end of file, but valid frames follow it");
      }
      return finish(StopReason::kTorn, false,
                    "frame at offset " + at(offset) + " (" + at(frame_size) +
                        " bytes) runs past end of file (" + at(remaining) + " bytes left)");
    }

    const uint8_t* payload = bytes + offset + kFrameHeaderBytes;
    if (offset == 0) salt = read_u32(payload + kHeaderSaltOffset);
    if (!frame_validates(bytes, offset, length, chain_crc, salt)) {
      bool followed = later_frame_validates(bytes, size, offset, salt_for_search(), nullptr);
      return finish(StopReason::kCrc, followed,
                    "crc mismatch in frame at offset " + at(offset) + " (type " + at(type) + ", " +
                        at(length) + " bytes)");
    }
    if (offset == 0 && out.header_error.empty()) {
      if (std::memcmp(payload, kSegmentMagic, sizeof kSegmentMagic) != 0) {
        out.header_error = "not a raftkv WAL segment: magic is not \"RAFTKVWL\"";
      } else if (read_u32(payload + 8) != kFormatVersion) {
        out.header_error = "unsupported raftkv WAL format version " + at(read_u32(payload + 8)) +
                           " (this build reads version 1)";
      }
    }
    out.frames.push_back(ScannedFrame{offset, type, length, stored_crc});
    chain_crc = stored_crc;
    offset += frame_size;
  }
}

}  // namespace raftkv
