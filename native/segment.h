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
#include <type_traits>
#include <utility>
#include <vector>

#include "sysio.h"

namespace raftkv {

enum class WalMode { kBuffered, kDirect, kDsync };
enum class WalModeOption { kBuffered, kDirect, kDsync, kAuto };
const char* wal_mode_name(WalMode mode);
bool parse_wal_mode_option(const std::string& text, WalModeOption* out);

// Allocator whose value-less construct() default-initialises: resize() of a byte vector then
// leaves the new bytes uninitialised instead of zero-filling them. Frame buffers are written
// completely by encode_frame_unsealed (header, reserved bytes, payload and padding), so the
// zero-fill of a 1 MiB batch was pure overhead on the JS thread.
template <typename T>
struct UninitializedAllocator : std::allocator<T> {
  template <typename U>
  struct rebind {
    using other = UninitializedAllocator<U>;
  };
  UninitializedAllocator() = default;
  template <typename U>
  UninitializedAllocator(const UninitializedAllocator<U>&) noexcept {}
  template <typename U>
  void construct(U* p) noexcept(std::is_nothrow_default_constructible<U>::value) {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

// Bytes that are written in full before being read (see UninitializedAllocator).
using FrameBytes = std::vector<uint8_t, UninitializedAllocator<uint8_t>>;

struct Batch {
  enum class Kind { kAppend, kSync, kClose };
  Kind kind = Kind::kAppend;
  // Frames laid out back to back, crc fields still zero (sealed on the writer thread).
  FrameBytes frames;
  bool sync = false;
  // Results, filled by the writer.
  uint64_t end_offset = 0;
  uint32_t last_crc = 0;
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
  // group in order; `on_exit` once, as the thread's last action.
  void start(std::function<void(BatchGroup)> complete, std::function<void()> on_exit);
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
  uint8_t* direct_buffer_ = nullptr;
  size_t direct_capacity_ = 0;
  SysError failed_;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::unique_ptr<Batch>> queue_;
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
