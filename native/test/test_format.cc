#include <cstring>

#include "crc32c.h"
#include "format.h"
#include "harness.h"
#include "sysio.h"
#include "test_util.h"

using namespace raftkv;
using testutil::build_segment;

TEST("framing: header layout, zero padding to 8 bytes, salted chained crc") {
  std::vector<uint8_t> out;
  uint32_t crc = 0x11111111u;
  std::vector<uint8_t> payload = {1, 2, 3, 4, 5};
  testutil::add_frame(&out, 3, payload, 0xABCDEF01u, &crc);
  CHECK_EQ(out.size(), size_t{24});
  CHECK_EQ(read_u32(out.data()), 5u);
  CHECK_EQ(static_cast<int>(out[4]), 3);
  CHECK(out[5] == 0 && out[6] == 0 && out[7] == 0);
  CHECK_EQ(read_u32(out.data() + 12), 0u);
  CHECK(std::memcmp(out.data() + 16, payload.data(), 5) == 0);
  CHECK(out[21] == 0 && out[22] == 0 && out[23] == 0);
  // crc = crc(prev, salt_le32 ‖ frame[0..8) ‖ payload)
  uint8_t prefix[12];
  write_u32(prefix, 0xABCDEF01u);
  std::memcpy(prefix + 4, out.data(), 8);
  uint32_t expected = crc32c_update_software(0x11111111u, prefix, 12);
  expected = crc32c_update_software(expected, payload.data(), payload.size());
  CHECK_EQ(read_u32(out.data() + 8), expected);
  CHECK_EQ(crc, expected);
  CHECK_EQ(frame_bytes(8), uint64_t{24});
  CHECK_EQ(frame_bytes(9), uint64_t{32});
}

TEST("framing: direct-mode PAD sizes fill to the block, never a length-0 PAD") {
  CHECK_EQ(pad_frame_bytes(4096, 4096), uint64_t{0});
  CHECK_EQ(pad_frame_bytes(0, 4096), uint64_t{0});
  CHECK_EQ(pad_frame_bytes(4072, 4096), uint64_t{24});
  CHECK_EQ(pad_frame_bytes(4080, 4096), uint64_t{16 + 4096});  // 16: would be length 0
  CHECK_EQ(pad_frame_bytes(4088, 4096), uint64_t{8 + 4096});
  CHECK_EQ(pad_frame_bytes(56, 4096), uint64_t{4040});
  CHECK_EQ(pad_frame_bytes(123, 0), uint64_t{0});
  for (uint64_t end = 8; end < 3 * 4096; end += 8) {
    uint64_t pad = pad_frame_bytes(end, 4096);
    CHECK_EQ((end + pad) % 4096, uint64_t{0});
    CHECK(pad == 0 || pad >= 24);
  }
}

TEST("scan: clean zero tail, exact eof, salt and seed are checked") {
  auto seg = build_segment(77, 5, 20);
  std::vector<uint8_t> bytes = seg.bytes;
  ScanOutcome eof = scan_frames(bytes.data(), bytes.size(), 5);
  CHECK(eof.reason == StopReason::kEof);
  CHECK_EQ(eof.frames.size(), size_t{42});
  CHECK_EQ(eof.valid_end_offset, uint64_t{bytes.size()});
  CHECK_EQ(eof.last_crc, seg.last_crc);
  CHECK_EQ(eof.later_commit_offset, int64_t{-1});
  bytes.resize(bytes.size() + 10000, 0);
  ScanOutcome zero = scan_frames(bytes.data(), bytes.size(), 5);
  CHECK(zero.reason == StopReason::kZero);
  CHECK_EQ(zero.stop_offset, uint64_t{seg.bytes.size()});
  CHECK_EQ(zero.frames.size(), size_t{42});
  // Wrong seed: the very first frame fails.
  ScanOutcome wrong = scan_frames(bytes.data(), bytes.size(), 6);
  CHECK(wrong.reason == StopReason::kCrc);
  CHECK_EQ(wrong.stop_offset, uint64_t{0});
  CHECK(wrong.frames.empty());
  // Empty and all-zero files: a clean end at 0.
  ScanOutcome empty = scan_frames(bytes.data(), 0, 0);
  CHECK(empty.reason == StopReason::kEof);
  std::vector<uint8_t> zeros(4096, 0);
  ScanOutcome fresh = scan_frames(zeros.data(), zeros.size(), 0);
  CHECK(fresh.reason == StopReason::kZero);
  CHECK_EQ(fresh.stop_offset, uint64_t{0});
}

namespace {
// Frames kept when only the frames `whole` says survived: up to the last COMMIT frame before the
// first frame that did not.
template <typename Whole>
size_t committed_frames(const testutil::BuiltSegment& seg, Whole whole) {
  size_t kept = 0;
  for (size_t i = 0; i < seg.offsets.size(); i++) {
    uint64_t end = i + 1 < seg.offsets.size() ? seg.offsets[i + 1] : seg.bytes.size();
    if (!whole(seg.offsets[i], end)) break;
    if (seg.bytes[seg.offsets[i] + 4] == kTypeCommit) kept = i + 1;
  }
  return kept;
}
}  // namespace

TEST("scan: truncation or a zeroed tail at every byte of the last batches keeps exactly the whole batches") {
  auto seg = build_segment(9, 0, 6);
  for (uint64_t cut = seg.offsets[6]; cut <= seg.bytes.size(); cut++) {
    std::vector<uint8_t> bytes(seg.bytes.begin(), seg.bytes.begin() + static_cast<long>(cut));
    ScanOutcome o = scan_frames(bytes.data(), bytes.size(), 0);
    size_t kept = committed_frames(seg, [&](uint64_t, uint64_t end) { return end <= cut; });
    CHECK_EQ(o.frames.size(), kept);
    CHECK_EQ(o.valid_end_offset, kept < seg.offsets.size() ? seg.offsets[kept] : uint64_t{seg.bytes.size()});
    bool at_boundary = o.stop_offset == cut;
    CHECK(at_boundary ? o.reason == StopReason::kEof : o.reason == StopReason::kTorn);
    CHECK_EQ(o.later_commit_offset, int64_t{-1});
    // And with the rest zeroed (a preallocated file): bytes zero already (padding, a COMMIT's
    // reserved word) make no difference; nothing later proves the torn batch synced.
    bytes.resize(seg.bytes.size() + 4096, 0);
    ScanOutcome z = scan_frames(bytes.data(), bytes.size(), 0);
    size_t kept_zeroed = committed_frames(seg, [&](uint64_t from, uint64_t end) {
      return end <= cut || all_zero(seg.bytes.data(), cut > from ? cut : from, end);
    });
    CHECK_EQ(z.frames.size(), kept_zeroed);
    CHECK(z.reason != StopReason::kEof);
    CHECK_EQ(z.later_commit_offset, int64_t{-1});
  }
}

TEST("scan: a flipped bit mid-log is a stop that a later COMMIT frame proves synced; in the last batch it is not") {
  auto seg = build_segment(3, 0, 10);
  std::vector<uint8_t> bytes = seg.bytes;
  bytes.resize(bytes.size() + 512, 0);
  std::vector<uint8_t> mid = bytes;
  mid[seg.records[4] + 20] ^= 0x10;
  ScanOutcome m = scan_frames(mid.data(), mid.size(), 0);
  CHECK(m.reason == StopReason::kCrc);
  CHECK_EQ(m.stop_offset, seg.records[4]);
  CHECK_EQ(m.valid_end_offset, seg.records[4]);
  CHECK_EQ(m.frames.size(), size_t{8});
  // Batch 5's COMMIT frame was written once batch 4 was synced, and says so.
  CHECK_EQ(m.later_commit_offset, static_cast<int64_t>(seg.records[5] + frame_bytes(read_u32(seg.bytes.data() + seg.records[5]))));
  CHECK_EQ(m.later_commit_durable, seg.records[5]);
  std::vector<uint8_t> tail = bytes;
  tail[seg.records[10] + 17] ^= 0x01;
  ScanOutcome t = scan_frames(tail.data(), tail.size(), 0);
  CHECK(t.reason == StopReason::kCrc);
  CHECK_EQ(t.later_commit_offset, int64_t{-1});
  CHECK_EQ(t.valid_end_offset, seg.records[10]);
  // A corrupted length mid-log.
  std::vector<uint8_t> len = bytes;
  write_u32(len.data() + seg.records[5], kRecordBytesMax + 1);
  ScanOutcome l = scan_frames(len.data(), len.size(), 0);
  CHECK(l.reason == StopReason::kLength);
  CHECK(l.later_commit_offset > 0);
  // Non-zero reserved header bytes in the last record.
  std::vector<uint8_t> reserved = bytes;
  reserved[seg.records[10] + 13] = 1;
  ScanOutcome r = scan_frames(reserved.data(), reserved.size(), 0);
  CHECK(r.reason == StopReason::kLength);
  CHECK_EQ(r.later_commit_offset, int64_t{-1});
}

TEST("scan: a zeroed hole followed by committed batches is torn and proven synced; garbage after zeros is torn") {
  auto seg = build_segment(5, 0, 10);
  std::vector<uint8_t> hole = seg.bytes;
  hole.resize(hole.size() + 256, 0);
  std::memset(hole.data() + seg.records[3], 0, seg.records[5] - seg.records[3]);
  ScanOutcome h = scan_frames(hole.data(), hole.size(), 0);
  CHECK(h.reason == StopReason::kTorn);
  CHECK(h.later_commit_offset > static_cast<int64_t>(seg.records[5]));
  CHECK_EQ(h.stop_offset, seg.records[3]);
  std::vector<uint8_t> garbage = seg.bytes;
  garbage.resize(garbage.size() + 256, 0);
  garbage[seg.bytes.size() + 100] = 0x42;
  ScanOutcome g = scan_frames(garbage.data(), garbage.size(), 0);
  CHECK(g.reason == StopReason::kTorn);
  CHECK_EQ(g.later_commit_offset, int64_t{-1});
  CHECK_EQ(g.frames.size(), size_t{22});
}

TEST("scan: valid frames without their COMMIT frame are not kept; a COMMIT with wrong fields stops the scan") {
  auto seg = build_segment(8, 0, 4);
  // Drop the last COMMIT frame (zeros instead): the last entry is uncommitted.
  std::vector<uint8_t> uncommitted = seg.bytes;
  uint64_t last_commit = seg.offsets.back();
  std::memset(uncommitted.data() + last_commit, 0, kCommitFrameBytes);
  ScanOutcome u = scan_frames(uncommitted.data(), uncommitted.size(), 0);
  CHECK(u.reason == StopReason::kZero);
  CHECK_EQ(u.stop_offset, last_commit);
  CHECK_EQ(u.valid_end_offset, seg.records[4]);
  CHECK_EQ(u.frames.size(), size_t{8});
  // A COMMIT frame re-sealed with a wrong field: its crc passes, its fields do not.
  struct Case {
    uint32_t at;
    uint64_t value;
  };
  for (Case c : {Case{kCommitFrameOffsetAt, 8}, Case{kCommitDurableOffsetAt, 1u << 20}, Case{kCommitReservedAt, 1}}) {
    std::vector<uint8_t> bad = seg.bytes;
    uint64_t commit = seg.offsets[5];
    uint8_t* payload = bad.data() + commit + kFrameHeaderBytes;
    if (c.at == kCommitReservedAt) write_u32(payload + c.at, static_cast<uint32_t>(c.value));
    else write_u64(payload + c.at, c.value);
    seal_frame(bad.data() + commit, read_u32(payload + kCommitPrevCrcAt), 8);
    ScanOutcome b = scan_frames(bad.data(), bad.size(), 0);
    CHECK(b.reason == StopReason::kCommit);
    CHECK_EQ(b.stop_offset, commit);
    CHECK_EQ(b.valid_end_offset, seg.records[2]);
  }
}

TEST("append layout: every non-empty append ends with exactly one COMMIT frame at its mark") {
  std::vector<uint8_t> commit(kCommitPayloadBytes, 0);
  std::vector<uint8_t> frames;
  auto add_unsealed = [&](uint8_t type, const std::vector<uint8_t>& payload) {
    size_t at = frames.size();
    frames.resize(at + frame_bytes(static_cast<uint32_t>(payload.size())));
    encode_frame_unsealed(frames.data() + at, type, payload.data(), static_cast<uint32_t>(payload.size()));
  };
  add_unsealed(3, testutil::payload_of(10, 1));
  uint64_t first = frames.size();
  add_unsealed(kTypeCommit, commit);
  uint64_t one = frames.size();
  CHECK(check_append_layout(frames.data(), one, nullptr, 0).empty());
  uint64_t marks_ok[] = {0, one, one};
  CHECK(check_append_layout(frames.data(), one, marks_ok, 3).empty());  // empty appends around it
  uint64_t marks_early[] = {first, one};
  CHECK(!check_append_layout(frames.data(), one, marks_early, 2).empty());  // an append without COMMIT
  // Sealed frames (crc set) are refused: the writer seals.
  std::vector<uint8_t> sealed = frames;
  write_u32(sealed.data() + 8, 1);
  CHECK(!check_append_layout(sealed.data(), one, nullptr, 0).empty());
  // A COMMIT frame in the middle of an append, and one of the wrong length.
  add_unsealed(kTypeCommit, commit);
  CHECK(!check_append_layout(frames.data(), frames.size(), nullptr, 0).empty());
  frames.clear();
  add_unsealed(kTypeCommit, std::vector<uint8_t>(32, 0));
  CHECK(!check_append_layout(frames.data(), frames.size(), nullptr, 0).empty());
}

TEST("seal_commit: stores its offset and the crc it continues, and validates on its own") {
  std::vector<uint8_t> bytes;
  uint32_t crc = 0x1234;
  testutil::add_frame(&bytes, 3, testutil::payload_of(5, 1), 99, &crc);
  uint32_t before = crc;
  uint64_t at = testutil::add_commit(&bytes, 99, &crc, 7);
  const uint8_t* payload = bytes.data() + at + kFrameHeaderBytes;
  CHECK_EQ(read_u64(payload + kCommitFrameOffsetAt), at);
  CHECK_EQ(read_u64(payload + kCommitDurableOffsetAt), uint64_t{7});
  CHECK_EQ(read_u32(payload + kCommitPrevCrcAt), before);
  CHECK_EQ(read_u32(payload + kCommitReservedAt), 0u);
  CHECK_EQ(frame_crc(bytes.data() + at, kCommitPayloadBytes, read_u32(payload + kCommitPrevCrcAt), 99), crc);
}

TEST("scan: reads a crafted file from disk") {
  auto seg = build_segment(11, 0, 3);
  std::string path = testing::scratch_dir() + "/seg.wal";
  FILE* f = std::fopen(path.c_str(), "wb");
  CHECK(f != nullptr);
  std::vector<uint8_t> bytes = seg.bytes;
  bytes.resize(bytes.size() + 1000, 0);
  CHECK_EQ(std::fwrite(bytes.data(), 1, bytes.size(), f), bytes.size());
  std::fclose(f);
  uint8_t* data = nullptr;
  uint64_t size = 0;
  CHECK(read_whole_file(path, &data, &size).ok());
  ScanOutcome o = scan_frames(data, size, 0);
  std::free(data);
  CHECK(o.reason == StopReason::kZero);
  CHECK_EQ(o.frames.size(), size_t{8});
  SysError missing = read_whole_file(path + ".nope", &data, &size);
  CHECK_EQ(missing.err, ENOENT);
}
