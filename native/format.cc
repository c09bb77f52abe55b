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

uint32_t seal_commit(uint8_t* frame, uint64_t file_offset, uint32_t prev_crc, uint32_t salt) {
  uint8_t* payload = frame + kFrameHeaderBytes;
  write_u64(payload + kCommitFrameOffsetAt, file_offset);
  write_u32(payload + kCommitPrevCrcAt, prev_crc);
  return seal_frame(frame, prev_crc, salt);
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
    case StopReason::kCommit: return "commit";
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

std::string check_append_layout(const uint8_t* frames, uint64_t size, const uint64_t* marks, size_t mark_count) {
  const uint64_t implicit_mark = size;
  if (mark_count == 0) {
    marks = &implicit_mark;
    mark_count = 1;
  }
  uint64_t at = 0;
  uint64_t append_start = 0;  // where the current append began
  bool last_was_commit = false;
  size_t next_mark = 0;
  auto take_marks = [&]() -> std::string {
    while (next_mark < mark_count && marks[next_mark] == at) {
      if (at != append_start && !last_was_commit) {
        return "the append ending at " + std::to_string(at) + " does not end with a COMMIT frame";
      }
      append_start = at;
      next_mark++;
    }
    return "";
  };
  std::string problem = take_marks();
  while (problem.empty() && at < size) {
    int64_t length = whole_frame_length(frames, size, at);
    if (length < 0) {
      return size - at < kFrameHeaderBytes ? "torn frame at " + std::to_string(at)
                                           : "bad frame length " + std::to_string(read_u32(frames + at)) +
                                                 " at " + std::to_string(at);
    }
    const uint8_t* frame = frames + at;
    if (!frame_header_fields_valid(frame) || read_u32(frame + 8) != 0) {
      return "bad frame header at " + std::to_string(at);
    }
    bool commit = frame[4] == kTypeCommit;
    if (commit && length != kCommitPayloadBytes) return "COMMIT frame of length " + std::to_string(length) + " at " + std::to_string(at);
    at += frame_bytes(static_cast<uint32_t>(length));
    if (commit && (next_mark >= mark_count || marks[next_mark] != at)) {
      return "COMMIT frame before the end of its append at " + std::to_string(at - kCommitFrameBytes);
    }
    last_was_commit = commit;
    problem = take_marks();
  }
  if (!problem.empty()) return problem;
  if (next_mark != mark_count || at != size) return "marks must ascend along frame boundaries and end at the size";
  return "";
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

bool frame_validates(const uint8_t* bytes, uint64_t at, uint32_t length, uint32_t seed,
                     uint32_t salt) {
  return frame_crc(bytes + at, length, seed, salt) == read_u32(bytes + at + 8);
}

// What is wrong with the payload of the COMMIT frame at `at`, whose crc continues `prev_crc`
// ("" when nothing): it must state its own offset, a durable offset not past that, the crc it
// continues, and a zero reserved word. Texts match src/wal/frame.ts commitProblem.
std::string commit_problem(const uint8_t* bytes, uint64_t at, uint32_t prev_crc) {
  const uint8_t* payload = bytes + at + kFrameHeaderBytes;
  uint64_t frame_offset = read_u64(payload + kCommitFrameOffsetAt);
  uint64_t durable = read_u64(payload + kCommitDurableOffsetAt);
  if (frame_offset != at) return "does not state its own offset";
  if (durable > at) return "states a durable offset past itself";
  uint32_t stated = read_u32(payload + kCommitPrevCrcAt);
  if (stated != prev_crc) return "states prevCrc " + std::to_string(stated) + ", the chain has " + std::to_string(prev_crc);
  if (read_u32(payload + kCommitReservedAt) != 0) return "has non-zero reserved bytes 20..23";
  return "";
}

// The first COMMIT frame at or after `from` that validates on its own (crc checked against the
// prevCrc its payload states, with the salt; fields sane) and says the segment was durable past
// `committed_end`; offset -1 when none. Mirrors src/wal/frame.ts findLaterCommit.
int64_t find_later_commit(const uint8_t* bytes, uint64_t size, uint64_t from, uint32_t salt,
                          uint64_t committed_end, uint64_t* durable_out) {
  for (uint64_t at = from; at + kCommitFrameBytes <= size; at += 8) {
    const uint8_t* frame = bytes + at;
    if (read_u32(frame) != kCommitPayloadBytes || frame[4] != kTypeCommit) continue;
    if (frame[5] != 0 || frame[6] != 0 || frame[7] != 0 || read_u32(frame + 12) != 0) continue;
    uint32_t stated = read_u32(frame + kFrameHeaderBytes + kCommitPrevCrcAt);
    if (!frame_validates(bytes, at, kCommitPayloadBytes, stated, salt)) continue;
    if (!commit_problem(bytes, at, stated).empty()) continue;
    uint64_t durable = read_u64(frame + kFrameHeaderBytes + kCommitDurableOffsetAt);
    if (durable > committed_end) {
      *durable_out = durable;
      return static_cast<int64_t>(at);
    }
  }
  return -1;
}

}  // namespace

ScanOutcome scan_frames(const uint8_t* bytes, uint64_t size, uint32_t prev_crc) {
  ScanOutcome out;
  uint32_t chain_crc = prev_crc;
  uint32_t salt = 0;
  uint64_t offset = 0;
  // The end of the last committed batch: its COMMIT frame, and PAD frames right after it.
  uint64_t committed_end = 0;
  uint32_t committed_crc = prev_crc;
  size_t committed_count = 0;

  // Before the header frame validated, the best guess for the salt is what its bytes say.
  auto salt_for_search = [&]() -> uint32_t {
    if (!out.frames.empty() || size < kFrameHeaderBytes + kHeaderSaltOffset + 4) return salt;
    return read_u32(bytes + kFrameHeaderBytes + kHeaderSaltOffset);
  };
  auto finish = [&](StopReason reason, std::string detail) {
    bool clean_end = reason == StopReason::kEof || reason == StopReason::kZero;
    if (!clean_end) {
      out.later_commit_offset = find_later_commit(bytes, size, offset, salt_for_search(), committed_end,
                                                  &out.later_commit_durable);
    }
    out.frames.resize(committed_count);
    out.valid_end_offset = committed_end;
    out.last_crc = committed_crc;
    out.reason = reason;
    out.stop_offset = offset;
    out.detail = std::move(detail);
    return out;
  };
  auto at = [](uint64_t n) { return std::to_string(n); };

  for (;;) {
    uint64_t remaining = size - offset;
    if (remaining == 0) return finish(StopReason::kEof, "end of file at offset " + at(offset));

    bool short_word = remaining < 4;
    uint32_t length = short_word ? 0 : read_u32(bytes + offset);
    if ((!short_word && length == 0) || (short_word && all_zero(bytes, offset, size))) {
      int64_t non_zero_at = first_non_zero(bytes, offset, size);
      if (non_zero_at < 0) {
        return finish(StopReason::kZero, "zero tail from offset " + at(offset) + " to end of file");
      }
      uint64_t nz = static_cast<uint64_t>(non_zero_at);
      if (nz < offset + kFrameHeaderBytes && offset + kFrameHeaderBytes <= size) {
        return finish(StopReason::kLength,
                      "frame at offset " + at(offset) + " has length 0 but non-zero header bytes");
      }
      return finish(StopReason::kTorn, "zero length word at offset " + at(offset) +
                                           " followed by non-zero bytes at offset " + at(nz));
    }
    if (remaining < kFrameHeaderBytes) {
      return finish(StopReason::kTorn,
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
    } else if (!(type >= kTypeSegmentHeader && type <= kTypeMax)) {
      bad_header = "unknown record type " + at(type);
    } else if (offset == 0 && type != kTypeSegmentHeader) {
      bad_header = "first frame has type " + at(type) + ", not SEGMENT_HEADER";
    } else if (offset == 0 && length != kSegmentHeaderPayloadBytes) {
      bad_header = "SEGMENT_HEADER frame has length " + at(length) + ", not " + at(kSegmentHeaderPayloadBytes);
    } else if (offset != 0 && type == kTypeSegmentHeader) {
      bad_header = "SEGMENT_HEADER frame after the start of the segment";
    } else if (type == kTypeCommit && length != kCommitPayloadBytes) {
      bad_header = "COMMIT frame has length " + at(length) + ", not " + at(kCommitPayloadBytes);
    }
    if (!bad_header.empty()) {
      return finish(StopReason::kLength, "bad frame header at offset " + at(offset) + ": " + bad_header);
    }

    uint64_t frame_size = frame_bytes(length);
    if (frame_size > remaining) {
      return finish(StopReason::kTorn, "frame at offset " + at(offset) + " (" + at(frame_size) +
                                           " bytes) runs past end of file (" + at(remaining) +
                                           " bytes left)");
    }

    const uint8_t* payload = bytes + offset + kFrameHeaderBytes;
    if (offset == 0) salt = read_u32(payload + kHeaderSaltOffset);
    if (!frame_validates(bytes, offset, length, chain_crc, salt)) {
      return finish(StopReason::kCrc, "crc mismatch in frame at offset " + at(offset) + " (type " +
                                          at(type) + ", " + at(length) + " bytes)");
    }
    if (offset == 0 && out.header_error.empty()) {
      if (std::memcmp(payload, kSegmentMagic, sizeof kSegmentMagic) != 0) {
        out.header_error = "not a raftkv WAL segment: magic is not \"RAFTKVWL\"";
      } else if (read_u32(payload + 8) != kFormatVersion) {
        uint32_t version = read_u32(payload + 8);
        out.header_error = "unsupported raftkv WAL format version " + at(version) +
                           " (this build reads version " + at(kFormatVersion) + " only" +
                           (version == 1 ? ": version 1 has no COMMIT frames, so a torn final batch cannot be told from damage)"
                                         : ")");
      }
    }
    if (type == kTypeCommit) {
      std::string problem = commit_problem(bytes, offset, chain_crc);
      if (!problem.empty()) {
        return finish(StopReason::kCommit, "COMMIT frame at offset " + at(offset) + " " + problem);
      }
    }
    out.frames.push_back(ScannedFrame{offset, type, length, stored_crc});
    chain_crc = stored_crc;
    uint64_t frame_start = offset;
    offset += frame_size;
    if (type == kTypeCommit || (type == kTypePad && frame_start == committed_end)) {
      committed_end = offset;
      committed_crc = chain_crc;
      committed_count = out.frames.size();
    }
  }
}

}  // namespace raftkv
