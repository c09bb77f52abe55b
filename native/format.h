// The on-disk frame format of docs/wal-format.md: constants, frame encoding, and the scanner.
// Pure functions over memory, so the C++ tests can exercise them without files or Node.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace raftkv {

constexpr uint32_t kFrameHeaderBytes = 16;
constexpr uint32_t kRecordBytesMax = 64u * 1024u * 1024u;
constexpr uint32_t kSegmentHeaderPayloadBytes = 40;
constexpr uint32_t kHeaderSaltOffset = 32;  // of `salt` inside the SEGMENT_HEADER payload
// COMMIT payload: frame_offset u64 (0), durable_offset u64 (8), prev_crc u32 (16), zero u32 (20).
constexpr uint32_t kCommitPayloadBytes = 24;
constexpr uint32_t kCommitFrameOffsetAt = 0;
constexpr uint32_t kCommitDurableOffsetAt = 8;
constexpr uint32_t kCommitPrevCrcAt = 16;
constexpr uint32_t kCommitReservedAt = 20;
constexpr uint32_t kCommitFrameBytes = kFrameHeaderBytes + kCommitPayloadBytes;
constexpr uint8_t kTypeSegmentHeader = 1;
constexpr uint8_t kTypeMetadata = 2;
constexpr uint8_t kTypeEntry = 3;
constexpr uint8_t kTypeHardState = 4;
constexpr uint8_t kTypeSnapshot = 5;
constexpr uint8_t kTypePad = 6;
constexpr uint8_t kTypeCommit = 7;
constexpr uint8_t kTypeMax = 7;
constexpr char kSegmentMagic[8] = {'R', 'A', 'F', 'T', 'K', 'V', 'W', 'L'};
constexpr uint32_t kFormatVersion = 2;

// The layout rules the code below relies on (docs/wal-format.md); the addon exports these
// constants and src/wal/native-backend.ts refuses to load it when they differ from its own.
static_assert(kFrameHeaderBytes == 16, "frame header: length u32, type u8, 3 zero, crc u32, 4 zero");
static_assert(kFrameHeaderBytes % 8 == 0 && kSegmentHeaderPayloadBytes % 8 == 0 &&
                  kCommitPayloadBytes % 8 == 0,
              "fixed frames keep the next frame 8-byte aligned without padding");
static_assert(kRecordBytesMax > 0 && kRecordBytesMax <= 0xFFFFFFFFu - kFrameHeaderBytes - 7,
              "a frame's size fits the u32 length field plus header and padding");
static_assert(kHeaderSaltOffset + 4 <= kSegmentHeaderPayloadBytes - 4,
              "salt then prevCrc end the SEGMENT_HEADER payload");
static_assert(kCommitReservedAt + 4 == kCommitPayloadBytes && kCommitPrevCrcAt + 4 == kCommitReservedAt &&
                  kCommitDurableOffsetAt + 8 == kCommitPrevCrcAt && kCommitFrameOffsetAt + 8 == kCommitDurableOffsetAt,
              "COMMIT payload fields are contiguous");
static_assert(kCommitFrameBytes == 40, "a COMMIT frame is 40 bytes");
static_assert(kTypeSegmentHeader == 1 && kTypeCommit == kTypeMax && kTypePad + 1 == kTypeCommit,
              "record types are 1..kTypeMax with COMMIT last");
static_assert(sizeof kSegmentMagic == 8, "the magic is 8 bytes");

inline uint64_t round_up8(uint64_t n) { return (n + 7) & ~uint64_t{7}; }

inline uint64_t frame_bytes(uint32_t payload_length) {
  return kFrameHeaderBytes + round_up8(payload_length);
}

inline uint32_t read_u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | (static_cast<uint32_t>(p[1]) << 8) |
         (static_cast<uint32_t>(p[2]) << 16) | (static_cast<uint32_t>(p[3]) << 24);
}

inline void write_u32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v);
  p[1] = static_cast<uint8_t>(v >> 8);
  p[2] = static_cast<uint8_t>(v >> 16);
  p[3] = static_cast<uint8_t>(v >> 24);
}

inline uint64_t read_u64(const uint8_t* p) {
  return static_cast<uint64_t>(read_u32(p)) | (static_cast<uint64_t>(read_u32(p + 4)) << 32);
}

inline void write_u64(uint8_t* p, uint64_t v) {
  write_u32(p, static_cast<uint32_t>(v));
  write_u32(p + 4, static_cast<uint32_t>(v >> 32));
}

// Writes the 16-byte frame header (crc field zero), the payload and its zero padding into `out`
// (which must have frame_bytes(length) bytes). The crc is filled in later by seal_frame, when
// the chain state is known (on the writer thread).
void encode_frame_unsealed(uint8_t* out, uint8_t type, const uint8_t* payload, uint32_t length);

// Computes crc(prev_crc, salt_le32 ‖ frame[0..8) ‖ payload) for the frame at `frame`, stores it
// in the frame's crc field and returns it.
uint32_t seal_frame(uint8_t* frame, uint32_t prev_crc, uint32_t salt);

// Completes a COMMIT frame laid out with its durable offset (see src/wal/frame.ts layOutCommit):
// stores where it is (`file_offset`) and the crc it continues, then seals it. Returns its crc.
uint32_t seal_commit(uint8_t* frame, uint64_t file_offset, uint32_t prev_crc, uint32_t salt);

// crc of a frame as the chain defines it (does not modify anything).
uint32_t frame_crc(const uint8_t* frame, uint32_t payload_length, uint32_t prev_crc, uint32_t salt);

// Size of the PAD frame needed after `end` to reach a multiple of block_size (0: none needed).
// The gap is a multiple of 8; a PAD frame needs at least 24 bytes (a 16-byte header and a
// non-empty payload, since length 0 means "no record"), so a smaller gap spans one more block.
uint64_t pad_frame_bytes(uint64_t end, uint32_t block_size);

enum class StopReason { kEof, kZero, kTorn, kCrc, kLength, kCommit };
const char* stop_reason_name(StopReason reason);

struct ScannedFrame {
  uint64_t offset;
  uint8_t type;
  uint32_t length;
  uint32_t crc;
};

struct ScanOutcome {
  // Frames of committed batches only (see scan_frames).
  std::vector<ScannedFrame> frames;
  uint64_t valid_end_offset = 0;
  uint32_t last_crc = 0;
  StopReason reason = StopReason::kEof;
  uint64_t stop_offset = 0;
  std::string detail;
  // For a stop that is not a clean end: the first later self-validating COMMIT frame saying the
  // segment was durable past valid_end_offset (offset -1: none).
  int64_t later_commit_offset = -1;
  uint64_t later_commit_durable = 0;
  // Set when the header frame is crc-valid but its magic/version is not ours: a wrong file.
  std::string header_error;
};

// Walks the frames of a segment's bytes exactly as docs/wal-format.md specifies (and exactly as
// src/wal/frame.ts scanBuffer does: both backends must agree on every stop, detail text included).
ScanOutcome scan_frames(const uint8_t* bytes, uint64_t size, uint32_t prev_crc);

// True when bytes[from, to) are all zero (memcmp against itself shifted by one).
bool all_zero(const uint8_t* bytes, uint64_t from, uint64_t to);

// Payload length of the frame at bytes[at] when it is whole: its 16-byte header lies inside
// bytes[0, size), its length is in 1..RECORD_BYTES_MAX and the frame fits before `size`; else -1.
int64_t whole_frame_length(const uint8_t* bytes, uint64_t size, uint64_t at);

// True when the (whole) header at `frame` has a known record type and zero reserved bytes
// (5..7 and 12..15). The crc field is not looked at.
bool frame_header_fields_valid(const uint8_t* frame);

// Checks that frames[0, size) are laid out as a run of appends ending at `marks` (ascending; an
// empty append repeats the previous mark; no marks: one append ending at `size`): every
// non-empty append ends with exactly one COMMIT frame, of the right length, and has no other;
// every frame is whole with sane header fields. Returns "" when so, else what is wrong.
std::string check_append_layout(const uint8_t* frames, uint64_t size, const uint64_t* marks, size_t mark_count);

// Where walk_batch_frames stopped.
struct BatchWalk {
  uint64_t end;        // the offset after the last whole frame: the size when every frame was whole
  size_t marks_taken;  // how many marks, from the first, lay on the frame boundaries walked
};

// Walks frames laid out back to back in frames[0, size) (a batch before it is written), stopping
// at the first frame that is not whole (whole_frame_length). Calls on_frame(at, length) for every
// whole frame, and on_mark(index, boundary) for every mark met at a frame boundary (0 included),
// in order: `marks` ascend (equal ones allowed), and the first one not met ends mark taking.
template <typename Mark, typename OnFrame, typename OnMark>
BatchWalk walk_batch_frames(const uint8_t* frames, uint64_t size, const Mark* marks,
                            size_t mark_count, OnFrame&& on_frame, OnMark&& on_mark) {
  size_t next_mark = 0;
  auto take_marks = [&](uint64_t boundary) {
    while (next_mark < mark_count && marks[next_mark] == static_cast<Mark>(boundary)) {
      on_mark(next_mark++, boundary);
    }
  };
  take_marks(0);
  uint64_t at = 0;
  while (at < size) {
    int64_t length = whole_frame_length(frames, size, at);
    if (length < 0) break;
    on_frame(at, static_cast<uint32_t>(length));
    at += frame_bytes(static_cast<uint32_t>(length));
    take_marks(at);
  }
  return BatchWalk{at, next_mark};
}

}  // namespace raftkv
