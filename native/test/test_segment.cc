#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>

#include "format.h"
#include "harness.h"
#include "segment.h"
#include "sysio.h"
#include "test_util.h"

using namespace raftkv;

namespace {

// Collects completed batches from a segment's writer thread, in completion order.
struct Collector {
  std::mutex mutex;
  std::condition_variable done;
  std::vector<std::unique_ptr<Batch>> batches;
  std::vector<size_t> group_sizes;

  std::function<void(BatchGroup)> callback() {
    return [this](BatchGroup group) {
      std::lock_guard<std::mutex> lock(mutex);
      group_sizes.push_back(group.size());
      for (auto& b : group) batches.push_back(std::move(b));
      done.notify_all();
    };
  }
  bool wait_for(size_t count) {
    std::unique_lock<std::mutex> lock(mutex);
    return done.wait_for(lock, std::chrono::seconds(30), [&] { return batches.size() >= count; });
  }
};

// Lays out the COMMIT frame closing an append at `at` (stating `durable`; the writer fills in
// the rest) and returns where it ends.
uint8_t* lay_out_commit(uint8_t* at, uint64_t durable = 0) {
  uint8_t payload[kCommitPayloadBytes] = {0};
  write_u64(payload + kCommitDurableOffsetAt, durable);
  encode_frame_unsealed(at, kTypeCommit, payload, kCommitPayloadBytes);
  return at + kCommitFrameBytes;
}

// One append as a batch: frames of `payloads` and the COMMIT frame closing them, in a FrameBuffer
// with `slack` spare bytes after them (room for a direct-mode PAD written in place; 0 forces the
// copying path).
std::unique_ptr<Batch> append_batch(const std::vector<std::vector<uint8_t>>& payloads, uint8_t type, bool sync,
                                    size_t slack = 8192) {
  auto batch = std::make_unique<Batch>();
  batch->sync = sync;
  uint64_t total = kCommitFrameBytes;
  for (auto& p : payloads) total += frame_bytes(static_cast<uint32_t>(p.size()));
  batch->buffer = FrameBuffer::allocate(total + slack);
  batch->size = total;
  uint8_t* at = batch->buffer->data();
  for (auto& p : payloads) {
    encode_frame_unsealed(at, type, p.data(), static_cast<uint32_t>(p.size()));
    at += frame_bytes(static_cast<uint32_t>(p.size()));
  }
  lay_out_commit(at);
  return batch;
}

std::unique_ptr<Batch> close_batch() {
  auto b = std::make_unique<Batch>();
  b->kind = Batch::Kind::kClose;
  return b;
}

std::string new_segment_file(uint64_t size) {
  std::string path = testing::scratch_dir() + "/0000000000000000-0000000000000001.wal";
  std::string used;
  SysError e = create_segment_file(path, size, Preallocate::kZero, &used);
  if (!e.ok()) std::fprintf(stderr, "create_segment_file: %s\n", describe(e).c_str());
  return path;
}

// The request a test opens a segment with: this file, this mode (tests add salt, offset…).
Segment::OpenRequest open_request(const std::string& path, WalModeOption mode) {
  Segment::OpenRequest req;
  req.path = path;
  req.mode = mode;
  return req;
}

// Opens `req`; null when that fails (the test CHECKs it; the error is printed).
std::unique_ptr<Segment> open_segment(const Segment::OpenRequest& req) {
  std::unique_ptr<Segment> seg;
  SysError e = Segment::open(req, &seg);
  if (!e.ok()) {
    std::fprintf(stderr, "Segment::open: %s\n", describe(e).c_str());
    seg.reset();
  }
  return seg;
}

// Opens `req` and starts its writer, completing into `collector`; null when the open fails.
// Declare the collector before the segment: it must outlive the writer thread.
std::unique_ptr<Segment> start_segment(const Segment::OpenRequest& req, Collector& collector) {
  std::unique_ptr<Segment> seg = open_segment(req);
  if (seg) seg->start(collector.callback(), nullptr);
  return seg;
}

// Reads the whole file into *out; false (and *out empty) when that fails.
bool read_path(const std::string& path, std::vector<uint8_t>* out) {
  uint8_t* data = nullptr;
  uint64_t size = 0;
  bool ok = read_whole_file(path, &data, &size).ok();
  if (ok) out->assign(data, data + size);
  else out->clear();
  std::free(data);
  return ok;
}

std::vector<uint8_t> file_bytes(const std::string& path) {
  std::vector<uint8_t> bytes;
  read_path(path, &bytes);
  return bytes;
}

ScanOutcome scan_path(const std::string& path, uint32_t prev_crc) {
  std::vector<uint8_t> bytes;
  read_path(path, &bytes);
  return scan_frames(bytes.data(), bytes.size(), prev_crc);
}

}  // namespace

TEST("segment: group commit merges held batches into one write + one sync, results in order") {
  std::string path = new_segment_file(1 << 20);
  Segment::OpenRequest req = open_request(path, WalModeOption::kBuffered);
  req.salt = 1234;
  Collector collector;
  std::unique_ptr<Segment> seg = start_segment(req, collector);
  CHECK(seg != nullptr);
  seg->set_hold(true);
  seg->submit(append_batch({testutil::header_payload(1234, 0)}, kTypeSegmentHeader, true));
  std::vector<Batch*> submitted;
  const int kBatches = 64;
  for (int i = 0; i < kBatches; i++) {
    std::vector<std::vector<uint8_t>> payloads;
    for (int r = 0; r <= i % 4; r++) payloads.push_back(testutil::payload_of(1 + (i * 13 + r) % 300, static_cast<uint8_t>(i)));
    auto batch = append_batch(payloads, 3, i % 3 == 0);
    submitted.push_back(batch.get());
    seg->submit(std::move(batch));
  }
  seg->set_hold(false);
  CHECK(collector.wait_for(kBatches + 1));
  SegmentStats stats = seg->stats();
  CHECK_EQ(stats.writes, uint64_t{1});
  CHECK_EQ(stats.syncs, uint64_t{1});
  CHECK_EQ(collector.group_sizes.size(), size_t{1});
  uint64_t expected_end = 0;
  for (int i = 0; i <= kBatches; i++) {
    Batch* b = collector.batches[static_cast<size_t>(i)].get();
    if (i > 0) CHECK(b == submitted[static_cast<size_t>(i - 1)]);  // completion order = submit order
    CHECK(b->error.ok());
    expected_end += b->size;
    CHECK_EQ(b->end_offset, expected_end);
  }
  ScanOutcome o = scan_path(path, 0);
  CHECK(o.reason == StopReason::kZero);
  CHECK_EQ(o.valid_end_offset, expected_end);
  CHECK_EQ(o.last_crc, collector.batches.back()->last_crc);

  seg->submit(close_batch());
  CHECK(collector.wait_for(kBatches + 2));
  seg->join();
}

TEST("segment: unheld appends from a tight loop complete in order with their own end offsets") {
  std::string path = new_segment_file(4 << 20);
  Segment::OpenRequest req = open_request(path, WalModeOption::kBuffered);
  req.salt = 99;
  Collector collector;
  std::unique_ptr<Segment> seg = start_segment(req, collector);
  CHECK(seg != nullptr);
  std::vector<Batch*> submitted;
  auto header = append_batch({testutil::header_payload(99, 0)}, kTypeSegmentHeader, true);
  submitted.push_back(header.get());
  seg->submit(std::move(header));
  const int kBatches = 500;
  for (int i = 0; i < kBatches; i++) {
    auto batch = append_batch({testutil::payload_of(100, static_cast<uint8_t>(i))}, 3, true);
    submitted.push_back(batch.get());
    seg->submit(std::move(batch));
  }
  CHECK(collector.wait_for(kBatches + 1));
  uint64_t end = 0;
  for (size_t i = 0; i < submitted.size(); i++) {
    CHECK(collector.batches[i].get() == submitted[i]);
    end += collector.batches[i]->size;
    CHECK_EQ(collector.batches[i]->end_offset, end);
  }
  SegmentStats stats = seg->stats();
  std::fprintf(stderr, "    (%d batches in %llu write+sync groups)\n", kBatches + 1,
               static_cast<unsigned long long>(stats.groups));
  CHECK(stats.groups <= static_cast<uint64_t>(kBatches + 1));
  CHECK_EQ(scan_path(path, 0).frames.size(), 2 * submitted.size());  // each: a record and a COMMIT
  seg->submit(close_batch());
  CHECK(collector.wait_for(submitted.size() + 1));
  seg->join();
}

TEST("segment: a failed fdatasync fails the segment; no retry, every later batch gets the first error") {
  std::string path = new_segment_file(1 << 16);
  Segment::OpenRequest req = open_request(path, WalModeOption::kBuffered);
  Collector collector;
  std::unique_ptr<Segment> seg = start_segment(req, collector);
  CHECK(seg != nullptr);
  seg->submit(append_batch({testutil::header_payload(0, 0)}, kTypeSegmentHeader, true));
  CHECK(collector.wait_for(1));
  CHECK(collector.batches[0]->error.ok());
  seg->set_fault(Segment::FaultOp::kSync, EIO);
  seg->submit(append_batch({testutil::payload_of(10, 1)}, 3, true));
  CHECK(collector.wait_for(2));
  CHECK_EQ(collector.batches[1]->error.err, EIO);
  CHECK_EQ(collector.batches[1]->error.syscall, std::string("fdatasync"));
  SegmentStats after_failure = seg->stats();
  seg->submit(append_batch({testutil::payload_of(10, 2)}, 3, true));
  auto sync = std::make_unique<Batch>();
  sync->kind = Batch::Kind::kSync;
  seg->submit(std::move(sync));
  CHECK(collector.wait_for(4));
  CHECK_EQ(collector.batches[2]->error.err, EIO);
  CHECK_EQ(collector.batches[3]->error.err, EIO);
  SegmentStats later = seg->stats();
  CHECK_EQ(later.writes, after_failure.writes);  // nothing written or synced again
  CHECK_EQ(later.syncs, after_failure.syncs);
  seg->submit(close_batch());
  CHECK(collector.wait_for(5));
  CHECK(collector.batches[4]->error.ok());  // closing a failed segment still releases the fd
  seg->join();
}

TEST("segment: a failed write fails the segment without a sync") {
  std::string path = new_segment_file(1 << 16);
  Segment::OpenRequest req = open_request(path, WalModeOption::kBuffered);
  Collector collector;
  std::unique_ptr<Segment> seg = start_segment(req, collector);
  CHECK(seg != nullptr);
  seg->set_fault(Segment::FaultOp::kWrite, ENOSPC);
  seg->submit(append_batch({testutil::header_payload(0, 0)}, kTypeSegmentHeader, true));
  seg->submit(close_batch());
  CHECK(collector.wait_for(2));
  CHECK_EQ(collector.batches[0]->error.err, ENOSPC);
  CHECK_EQ(seg->stats().syncs, uint64_t{0});
  seg->join();
}

TEST("segment: direct mode pads every write to the block size with a PAD frame") {
  std::string path = new_segment_file(1 << 20);
  DirectProbe probe;
  std::string dir = path.substr(0, path.find_last_of('/'));
  CHECK(probe_direct_io(dir, &probe).ok());
  if (!probe.usable) {
    std::fprintf(stderr, "    O_DIRECT unusable in %s (%s): set RAFTKV_TEST_DIR to a disk-backed dir\n",
                 dir.c_str(), probe.reason.c_str());
    CHECK(probe.usable);
  }
  Segment::OpenRequest req = open_request(path, WalModeOption::kDirect);
  req.salt = 4242;
  Collector collector;
  std::unique_ptr<Segment> seg = start_segment(req, collector);
  CHECK(seg != nullptr);
  CHECK(seg->mode() == WalMode::kDirect);
  uint32_t block = seg->block_size();
  CHECK(block >= 4096 && block % 512 == 0);
  seg->submit(append_batch({testutil::header_payload(4242, 0, block)}, kTypeSegmentHeader, true));
  size_t submitted = 1;
  CHECK(collector.wait_for(1));  // not merged with the next batch: one PAD per batch below
  // Sizes that land just short of a block boundary (gaps of 8 and 16) as well as ordinary ones.
  // (frame + 40-byte COMMIT frame: gaps of 40, 32, 24, …, 16)
  std::vector<size_t> sizes = {4000, 4008, 4016, 1, 100, 8000, 4096 - 16 - 16 - 40, 3};
  for (size_t i = 0; i < sizes.size(); i++) {
    seg->submit(append_batch({testutil::payload_of(sizes[i], static_cast<uint8_t>(i))}, 3, true));
    submitted++;
    CHECK(collector.wait_for(submitted));
    CHECK(collector.batches.back()->error.ok());
    CHECK_EQ(collector.batches.back()->end_offset % block, uint64_t{0});
  }
  seg->submit(close_batch());
  CHECK(collector.wait_for(submitted + 1));
  seg->join();
  ScanOutcome o = scan_path(path, 0);
  CHECK(o.reason == StopReason::kZero);
  CHECK_EQ(o.valid_end_offset, collector.batches[submitted - 1]->end_offset);
  // Every batch is followed by a PAD that ends on a block boundary.
  size_t pads = 0;
  for (size_t i = 0; i < o.frames.size(); i++) {
    const ScannedFrame& f = o.frames[i];
    if (f.type == kTypePad) {
      pads++;
      CHECK_EQ((f.offset + frame_bytes(f.length)) % block, uint64_t{0});
      CHECK(f.length >= 8);
    }
  }
  CHECK_EQ(pads, submitted);  // every batch here needed padding
}

TEST("segment: direct mode continues a segment whose end is not block aligned") {
  std::string path = new_segment_file(1 << 16);
  // First a header batch written buffered, then reopened direct at its unaligned end.
  uint32_t crc = 0;
  std::vector<uint8_t> bytes;
  testutil::add_frame(&bytes, kTypeSegmentHeader, testutil::header_payload(8, 0), 8, &crc);
  testutil::add_commit(&bytes, 8, &crc, 0);
  int fd = ::open(path.c_str(), O_WRONLY);
  CHECK(fd >= 0);
  CHECK(pwrite_all(fd, bytes.data(), bytes.size(), 0, path).ok());
  ::close(fd);
  Segment::OpenRequest req = open_request(path, WalModeOption::kDirect);
  req.offset = bytes.size();
  req.prev_crc = crc;
  req.salt = 8;
  Collector collector;
  std::unique_ptr<Segment> seg = start_segment(req, collector);
  CHECK(seg != nullptr);
  seg->submit(append_batch({testutil::payload_of(50, 1)}, 3, true));
  seg->submit(close_batch());
  CHECK(collector.wait_for(2));
  CHECK(collector.batches[0]->error.ok());
  seg->join();
  ScanOutcome o = scan_path(path, 0);
  CHECK(o.reason == StopReason::kZero);
  CHECK_EQ(o.frames.size(), size_t{5});  // header, COMMIT, entry, COMMIT, PAD
  CHECK_EQ(o.valid_end_offset % seg->block_size(), uint64_t{0});
}

TEST("segment: destroying a segment that was never closed stops its writer (no hang, no leak)") {
  std::string path = new_segment_file(1 << 16);
  Segment::OpenRequest req = open_request(path, WalModeOption::kBuffered);
  Collector collector;
  std::unique_ptr<Segment> seg = start_segment(req, collector);
  CHECK(seg != nullptr);
  seg->set_hold(true);
  for (int i = 0; i < 5; i++) seg->submit(append_batch({testutil::payload_of(10, 1)}, 3, true));
  seg.reset();  // queued batches are dropped with it
  CHECK(collector.batches.empty());
}

TEST("segment: appends merged into one batch get their own end offset and crc (marks)") {
  std::string path = new_segment_file(1 << 20);
  for (WalModeOption mode : {WalModeOption::kBuffered, WalModeOption::kDirect}) {
    Segment::OpenRequest req = open_request(path, mode);
    req.salt = 77;
    Collector collector;
    std::unique_ptr<Segment> seg = start_segment(req, collector);
    CHECK(seg != nullptr);
    // Appends of the header, two records, nothing, one more record (each non-empty one closed by
    // its COMMIT frame): marks after each.
    std::vector<uint8_t> header = testutil::header_payload(77, 0, seg->block_size());
    std::vector<uint8_t> p1 = testutil::payload_of(10, 1), p2 = testutil::payload_of(300, 2), p3 = testutil::payload_of(5, 3);
    uint64_t c = kCommitFrameBytes;
    uint64_t f0 = frame_bytes(kSegmentHeaderPayloadBytes), f1 = frame_bytes(10), f2 = frame_bytes(300), f3 = frame_bytes(5);
    auto batch = std::make_unique<Batch>();
    batch->sync = true;
    batch->buffer = FrameBuffer::allocate(16384);
    batch->marks = {f0 + c, f0 + c + f1 + f2 + c, f0 + c + f1 + f2 + c, f0 + c + f1 + f2 + c + f3 + c};
    uint8_t* at = batch->buffer->data();
    encode_frame_unsealed(at, kTypeSegmentHeader, header.data(), kSegmentHeaderPayloadBytes);
    at = lay_out_commit(at + f0);
    encode_frame_unsealed(at, 3, p1.data(), 10);
    encode_frame_unsealed(at + f1, 3, p2.data(), 300);
    at = lay_out_commit(at + f1 + f2);
    encode_frame_unsealed(at, 3, p3.data(), 5);
    at = lay_out_commit(at + f3);
    batch->size = static_cast<size_t>(at - batch->buffer->data());
    seg->submit(std::move(batch));
    seg->submit(close_batch());
    CHECK(collector.wait_for(2));
    seg->join();
    const Batch& done = *collector.batches[0];
    CHECK(done.error.ok());
    CHECK_EQ(done.mark_results.size(), size_t{4});
    ScanOutcome o = scan_path(path, 0);
    CHECK(o.frames.size() >= 7);  // header, C, e1, e2, C, e3, C [, PAD]
    CHECK_EQ(done.mark_results[0].first, o.frames[2].offset);
    CHECK_EQ(done.mark_results[0].second, o.frames[1].crc);
    CHECK_EQ(done.mark_results[1].first, o.frames[5].offset);
    CHECK_EQ(done.mark_results[1].second, o.frames[4].crc);
    CHECK(done.mark_results[2] == done.mark_results[1]);
    // The last mark is the batch's end: past the PAD frame in direct mode.
    CHECK_EQ(done.mark_results[3].first, done.end_offset);
    CHECK_EQ(done.mark_results[3].second, done.last_crc);
    CHECK_EQ(done.end_offset, o.valid_end_offset);
    CHECK_EQ(done.last_crc, o.last_crc);
    CHECK_EQ(o.frames.size(), size_t{mode == WalModeOption::kDirect ? 8u : 7u});
    // Each COMMIT frame states where it is; the writer sealed it continuing the chain.
    for (const ScannedFrame& f : o.frames) {
      if (f.type == kTypeCommit) CHECK_EQ(read_u64(file_bytes(path).data() + f.offset + kFrameHeaderBytes), f.offset);
    }
  }
}

TEST("segment: direct mode writes the same bytes from the frame buffer or through the copy") {
  // slack 8192: written in place from the batch's own aligned buffer, PAD appended there;
  // slack 0: no room for the PAD, copied into the segment's aligned buffer first.
  std::vector<std::vector<uint8_t>> files;
  for (size_t slack : {size_t{8192}, size_t{0}}) {
    std::string path = new_segment_file(1 << 20);
    Segment::OpenRequest req = open_request(path, WalModeOption::kDirect);
    req.salt = 5;
    Collector collector;
    std::unique_ptr<Segment> seg = start_segment(req, collector);
    CHECK(seg != nullptr);
    seg->submit(append_batch({testutil::header_payload(5, 0, seg->block_size())}, kTypeSegmentHeader, true, slack));
    CHECK(collector.wait_for(1));
    for (int i = 0; i < 6; i++) {
      seg->submit(append_batch({testutil::payload_of(1000 + 1500 * i, static_cast<uint8_t>(i))}, 3, true, slack));
      CHECK(collector.wait_for(static_cast<size_t>(i) + 2));
      CHECK(collector.batches.back()->error.ok());
    }
    seg->submit(close_batch());
    CHECK(collector.wait_for(8));
    seg->join();
    std::vector<uint8_t> file;
    CHECK(read_path(path, &file));
    files.push_back(std::move(file));
    CHECK_EQ(scan_path(path, 0).frames.size(), size_t{21});  // 7 batches: record, COMMIT, PAD each
    ::unlink(path.c_str());
  }
  CHECK(files[0] == files[1]);
}

TEST("segment: frames that no longer add up when written fail the segment; nothing is written") {
  std::string path = new_segment_file(1 << 16);
  Segment::OpenRequest req = open_request(path, WalModeOption::kBuffered);
  Collector collector;
  std::unique_ptr<Segment> seg = start_segment(req, collector);
  CHECK(seg != nullptr);
  seg->submit(append_batch({testutil::header_payload(0, 0)}, kTypeSegmentHeader, true));
  CHECK(collector.wait_for(1));
  SegmentStats before = seg->stats();
  auto bad = append_batch({testutil::payload_of(100, 1)}, 3, true);
  write_u32(bad->buffer->data(), 5000);  // a length running past the batch
  seg->submit(std::move(bad));
  seg->submit(append_batch({testutil::payload_of(10, 2)}, 3, true));
  seg->submit(close_batch());
  CHECK(collector.wait_for(4));
  seg->join();
  CHECK_EQ(collector.batches[1]->error.err, EINVAL);
  CHECK_EQ(collector.batches[2]->error.err, EINVAL);  // the segment failed: later batches too
  CHECK_EQ(seg->stats().writes, before.writes);
  CHECK_EQ(scan_path(path, 0).frames.size(), size_t{2});
}

TEST("segment: an append whose COMMIT frame is missing or states a durable offset past itself is never written") {
  std::string path = new_segment_file(1 << 16);
  for (int variant = 0; variant < 2; variant++) {
    Segment::OpenRequest req = open_request(path, WalModeOption::kBuffered);
    Collector collector;
    std::unique_ptr<Segment> seg = start_segment(req, collector);
    CHECK(seg != nullptr);
    seg->submit(append_batch({testutil::header_payload(0, 0)}, kTypeSegmentHeader, true));
    CHECK(collector.wait_for(1));
    auto bad = append_batch({testutil::payload_of(100, 1)}, 3, true);
    uint8_t* commit = bad->buffer->data() + frame_bytes(100);
    if (variant == 0) commit[4] = 3;  // an ENTRY where the COMMIT frame should be
    else write_u64(commit + kFrameHeaderBytes + kCommitDurableOffsetAt, 1 << 20);
    seg->submit(std::move(bad));
    seg->submit(close_batch());
    CHECK(collector.wait_for(3));
    seg->join();
    CHECK_EQ(collector.batches[1]->error.err, EINVAL);
    CHECK_EQ(scan_path(path, 0).frames.size(), size_t{2});
  }
}

TEST("frame buffers: huge-page copy buffers are reused across segments, aligned to a huge page") {
  std::unique_ptr<FrameBuffer> a = FrameBuffer::acquire_huge(100000);
  CHECK(a != nullptr);
  CHECK(a->capacity() >= 100000);
  CHECK_EQ(reinterpret_cast<uintptr_t>(a->data()) % kHugePageBytes, uintptr_t{0});
  uint8_t* memory = a->data();
  FrameBuffer::release_huge(std::move(a));
  std::unique_ptr<FrameBuffer> b = FrameBuffer::acquire_huge(5000);
  CHECK(b->data() == memory);  // the pooled one, not a fresh allocation
  std::unique_ptr<FrameBuffer> c = FrameBuffer::acquire_huge(3 * kHugePageBytes);  // too big for it
  CHECK(c->data() != memory);
  CHECK(c->capacity() >= 3 * kHugePageBytes);
  FrameBuffer::release_huge(std::move(b));
  FrameBuffer::release_huge(std::move(c));
}
