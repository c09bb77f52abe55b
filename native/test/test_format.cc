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
  CHECK_EQ(eof.frames.size(), size_t{21});
  CHECK_EQ(eof.valid_end_offset, uint64_t{bytes.size()});
  CHECK_EQ(eof.last_crc, seg.last_crc);
  bytes.resize(bytes.size() + 10000, 0);
  ScanOutcome zero = scan_frames(bytes.data(), bytes.size(), 5);
  CHECK(zero.reason == StopReason::kZero);
  CHECK_EQ(zero.stop_offset, uint64_t{seg.bytes.size()});
  CHECK_EQ(zero.frames.size(), size_t{21});
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

TEST("scan: truncation at every byte of the last frames keeps exactly the whole frames") {
  auto seg = build_segment(9, 0, 6);
  for (uint64_t cut = seg.offsets[3]; cut <= seg.bytes.size(); cut++) {
    std::vector<uint8_t> bytes(seg.bytes.begin(), seg.bytes.begin() + static_cast<long>(cut));
    ScanOutcome o = scan_frames(bytes.data(), bytes.size(), 0);
    size_t whole = 0;
    for (size_t i = 0; i < seg.offsets.size(); i++) {
      uint64_t end = i + 1 < seg.offsets.size() ? seg.offsets[i + 1] : seg.bytes.size();
      if (end <= cut) whole = i + 1;
    }
    CHECK_EQ(o.frames.size(), whole);
    bool at_boundary = o.valid_end_offset == cut;
    CHECK(at_boundary ? o.reason == StopReason::kEof : o.reason == StopReason::kTorn);
    CHECK(!o.followed_by_valid);
    // And with the rest zeroed (a preallocated file): a clean zero end or torn, never valid data.
    // A frame cut only in its zero padding is whole again once the rest reads as zeros.
    size_t whole_zeroed = 0;
    for (size_t i = 0; i < seg.offsets.size(); i++) {
      uint64_t payload_end = seg.offsets[i] + kFrameHeaderBytes + read_u32(seg.bytes.data() + seg.offsets[i]);
      if (payload_end <= cut) whole_zeroed = i + 1;
    }
    bytes.resize(seg.bytes.size() + 4096, 0);
    ScanOutcome z = scan_frames(bytes.data(), bytes.size(), 0);
    CHECK_EQ(z.frames.size(), whole_zeroed);
    CHECK(z.reason != StopReason::kEof);
    CHECK(!z.followed_by_valid);
  }
}

TEST("scan: a flipped bit mid-log is a crc stop followed by valid frames; at the tail it is not") {
  auto seg = build_segment(3, 0, 10);
  std::vector<uint8_t> bytes = seg.bytes;
  bytes.resize(bytes.size() + 512, 0);
  std::vector<uint8_t> mid = bytes;
  mid[seg.offsets[4] + 20] ^= 0x10;
  ScanOutcome m = scan_frames(mid.data(), mid.size(), 0);
  CHECK(m.reason == StopReason::kCrc);
  CHECK_EQ(m.stop_offset, seg.offsets[4]);
  CHECK(m.followed_by_valid);
  CHECK_EQ(m.frames.size(), size_t{4});
  std::vector<uint8_t> tail = bytes;
  tail[seg.offsets[10] + 17] ^= 0x01;
  ScanOutcome t = scan_frames(tail.data(), tail.size(), 0);
  CHECK(t.reason == StopReason::kCrc);
  CHECK(!t.followed_by_valid);
  // A corrupted length mid-log: bad length, valid data after it.
  std::vector<uint8_t> len = bytes;
  write_u32(len.data() + seg.offsets[5], kRecordBytesMax + 1);
  ScanOutcome l = scan_frames(len.data(), len.size(), 0);
  CHECK(l.reason == StopReason::kLength);
  CHECK(l.followed_by_valid);
  // Non-zero reserved header bytes.
  std::vector<uint8_t> reserved = bytes;
  reserved[seg.offsets[10] + 13] = 1;
  ScanOutcome r = scan_frames(reserved.data(), reserved.size(), 0);
  CHECK(r.reason == StopReason::kLength);
  CHECK(!r.followed_by_valid);
}

TEST("scan: a zeroed hole followed by valid frames is not a clean end; garbage after zeros is torn") {
  auto seg = build_segment(5, 0, 10);
  std::vector<uint8_t> hole = seg.bytes;
  hole.resize(hole.size() + 256, 0);
  std::memset(hole.data() + seg.offsets[3], 0, seg.offsets[5] - seg.offsets[3]);
  ScanOutcome h = scan_frames(hole.data(), hole.size(), 0);
  CHECK(h.reason == StopReason::kLength);
  CHECK(h.followed_by_valid);
  CHECK_EQ(h.stop_offset, seg.offsets[3]);
  std::vector<uint8_t> garbage = seg.bytes;
  garbage.resize(garbage.size() + 256, 0);
  garbage[seg.bytes.size() + 100] = 0x42;
  ScanOutcome g = scan_frames(garbage.data(), garbage.size(), 0);
  CHECK(g.reason == StopReason::kTorn);
  CHECK(!g.followed_by_valid);
  CHECK_EQ(g.frames.size(), size_t{11});
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
  CHECK_EQ(o.frames.size(), size_t{4});
  SysError missing = read_whole_file(path + ".nope", &data, &size);
  CHECK_EQ(missing.err, ENOENT);
}
