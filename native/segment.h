// A WAL segment file with its own writer thread: batches are queued by the caller (the JS
// thread) and the writer takes everything queued at once, seals the frames (chained CRC32C),
// writes them with ONE pwritev (or one aligned pwrite in direct mode) and does ONE fdatasync, then
// reports each batch's own end offset, in order. That merging is the group commit.
//
// A failed write or sync is never retried: the segment enters a failed state and every batch
// from then on completes with that first error.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "sysio.h"

namespace raftkv {

enum class WalMode { kBuffered, kDirect, kDsync };
enum class WalModeOption { kBuffered, kDirect, kDsync, kAuto };
const char* wal_mode_name(WalMode mode);
bool parse_wal_mode_option(const std::string& text, WalModeOption* out);

// Memory that frames are laid out in before they are written: filled by the caller (the JS
// thread, through an ArrayBuffer view of it), sealed and written in place by the writer thread.
// Aligned for O_DIRECT, so a direct-mode write can go straight from it. Shared: the JS view and
// every in-flight batch hold a reference, so it outlives whichever lets go last.
class FrameBuffer {
 public:
  static constexpr size_t kAlignment = 4096;
  // nullptr when the allocation fails. `huge`: whole transparent huge pages (for direct mode).
  static std::shared_ptr<FrameBuffer> allocate(size_t capacity, bool huge = false);
  // A huge-page buffer of at least `capacity` from a small process-wide pool (new if none
  // fits), and back to it. nullptr when the allocation fails.
  static std::unique_ptr<FrameBuffer> acquire_huge(size_t capacity);
  static void release_huge(std::unique_ptr<FrameBuffer> buffer);
  ~FrameBuffer();
  FrameBuffer(const FrameBuffer&) = delete;
  FrameBuffer& operator=(const FrameBuffer&) = delete;

  uint8_t* data() const { return data_; }
  size_t capacity() const { return capacity_; }
  // Set while a batch in this buffer is queued or being written (only the submitting thread
  // reads or writes it: the addon's JS thread), so the buffer is never handed over twice.
  bool queued = false;

 private:
  FrameBuffer(uint8_t* data, size_t capacity) : data_(data), capacity_(capacity) {}
  uint8_t* data_;
  size_t capacity_;
};

struct Batch {
  enum class Kind { kAppend, kSync, kClose };
  Kind kind = Kind::kAppend;
  // Append: frames laid out back to back in buffer[0, size), crc fields still zero (sealed on
  // the writer thread). Nobody else writes to that range while the batch is queued.
  std::shared_ptr<FrameBuffer> buffer;
  size_t size = 0;
  // Where each append merged into this batch ends, relative to the frames (ascending, the last
  // one == size). Empty: the batch is one append.
  std::vector<uint64_t> marks;
  bool sync = false;
  // Results, filled by the writer: the batch's end (the file offset after its last frame,
  // including a direct-mode PAD) and the crc there; per mark the same, as pairs.
  uint64_t end_offset = 0;
  uint32_t last_crc = 0;
  std::vector<std::pair<uint64_t, uint32_t>> mark_results;
  SysError error;
};

using BatchGroup = std::vector<std::unique_ptr<Batch>>;

struct SegmentStats {
  uint64_t writes = 0;   // write syscalls issued (pwritev/pwrite calls, counted per batch group)
  uint64_t syncs = 0;    // fdatasync calls issued
  uint64_t groups = 0;   // batch groups processed
};

class Segment {
 public:
  struct OpenRequest {
    std::string path;
    WalModeOption mode = WalModeOption::kAuto;
    uint64_t offset = 0;
    uint32_t prev_crc = 0;
    uint32_t salt = 0;
  };
  enum class FaultOp { kWrite, kSync };

  // Opens the file (which must exist) in the requested mode; `auto` probes O_DIRECT in the
  // file's directory. Does blocking I/O: call it off the JS thread.
  static SysError open(const OpenRequest& request, std::unique_ptr<Segment>* out);
  ~Segment();  // stops the writer without completing queued batches if still running

  Segment(const Segment&) = delete;
  Segment& operator=(const Segment&) = delete;

  // Starts the writer thread. `complete` is called on the writer thread with every processed
  // group in order; `on_exit` once, as the thread's last action. After a group the writer
  // polls for the next batch for up to kPollNs before sleeping.
  void start(std::function<void(BatchGroup)> complete, std::function<void()> on_exit);
  // A single producer's next append typically arrives 10-30 us after its completion was handed
  // over; past this the writer sleeps and the next submit wakes it.
  static constexpr int64_t kPollNs = 50 * 1000;
  // Queues a batch (the writer wakes up). A kClose batch must be the last one submitted.
  void submit(std::unique_ptr<Batch> batch);
  // Waits for the writer thread to end (after a kClose batch completed, or abort()).
  void join();
  void abort();

  const std::string& path() const { return path_; }
  WalMode mode() const { return mode_; }
  const std::string& mode_reason() const { return mode_reason_; }
  uint32_t block_size() const { return mode_ == WalMode::kDirect ? block_size_ : 0; }

  // TEST ONLY: make the next write or fdatasync fail with `err` (0 clears), once, without doing
  // the syscall (for write) or after doing it (for fdatasync, like a real lost writeback).
  void set_fault(FaultOp op, int err);
  // TEST ONLY: while held, the writer does not pick up queued batches (makes group commit
  // deterministic to test).
  void set_hold(bool hold);
  SegmentStats stats() const;

 private:
  Segment() = default;
  void run();
  // Waits (bounded by kPollNs) until a batch was submitted after the `taken`-th one, yielding
  // the CPU on every check: the JS thread is often woken onto this thread's CPU, and must run
  // there to submit anything.
  void poll_for_work(uint64_t taken);
  SysError seal_batch(Batch& batch, uint64_t start, uint32_t* crc);
  void process(BatchGroup& group);
  SysError write_group(BatchGroup& group, uint64_t end, uint64_t pad, uint32_t pad_crc);

  std::string path_;
  int fd_ = -1;
  WalMode mode_ = WalMode::kBuffered;
  std::string mode_reason_;
  uint32_t block_size_ = 0;
  uint32_t salt_ = 0;

  // Writer-thread state.
  uint64_t offset_ = 0;       // where the next frame goes
  uint32_t chain_crc_ = 0;    // crc of the last frame written
  std::vector<uint8_t> prefix_;  // direct mode: bytes of the partial block before offset_
  // Direct mode, groups of several batches: where they are copied together (from a process-wide
  // pool, since fresh memory is slow to fault in; back to it when the segment goes).
  std::unique_ptr<FrameBuffer> copy_buffer_;
  SysError failed_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<Batch>> queue_;
  // Batches submitted so far: written under mutex_, read without it while the writer polls.
  std::atomic<uint64_t> submitted_{0};
  bool abort_ = false;
  bool hold_ = false;
  std::thread thread_;
  std::function<void(BatchGroup)> complete_;
  std::function<void()> on_exit_;

  std::atomic<int> fault_write_{0};
  std::atomic<int> fault_sync_{0};
  std::atomic<uint64_t> writes_{0};
  std::atomic<uint64_t> syncs_{0};
  std::atomic<uint64_t> groups_{0};
};

}  // namespace raftkv
