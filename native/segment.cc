#include "segment.h"

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include "crc32c.h"
#include "format.h"

namespace raftkv {

const char* wal_mode_name(WalMode mode) {
  switch (mode) {
    case WalMode::kBuffered: return "buffered";
    case WalMode::kDirect: return "direct";
    case WalMode::kDsync: return "dsync";
  }
  return "?";
}

bool parse_wal_mode_option(const std::string& text, WalModeOption* out) {
  if (text == "buffered") *out = WalModeOption::kBuffered;
  else if (text == "direct") *out = WalModeOption::kDirect;
  else if (text == "dsync") *out = WalModeOption::kDsync;
  else if (text == "auto") *out = WalModeOption::kAuto;
  else return false;
  return true;
}

std::shared_ptr<FrameBuffer> FrameBuffer::allocate(size_t capacity, bool huge) {
  if (capacity == 0) capacity = kAlignment;
  void* data = huge ? huge_page_alloc_or_null(&capacity) : aligned_alloc_or_null(kAlignment, capacity);
  if (data == nullptr) return nullptr;
  return std::shared_ptr<FrameBuffer>(new FrameBuffer(static_cast<uint8_t*>(data), capacity));
}

FrameBuffer::~FrameBuffer() { std::free(data_); }

namespace {
std::mutex g_huge_pool_mutex;
std::vector<std::unique_ptr<FrameBuffer>>* g_huge_pool = nullptr;  // never destroyed: no exit-time order issues
constexpr size_t kHugePoolMax = 4;
}  // namespace

std::unique_ptr<FrameBuffer> FrameBuffer::acquire_huge(size_t capacity) {
  {
    std::lock_guard<std::mutex> lock(g_huge_pool_mutex);
    // Most recently released first (its memory is the likeliest to be warm).
    for (size_t i = g_huge_pool == nullptr ? 0 : g_huge_pool->size(); i-- > 0;) {
      if ((*g_huge_pool)[i]->capacity() >= capacity) {
        std::unique_ptr<FrameBuffer> found = std::move((*g_huge_pool)[i]);
        g_huge_pool->erase(g_huge_pool->begin() + static_cast<std::ptrdiff_t>(i));
        return found;
      }
    }
  }
  void* data = huge_page_alloc_or_null(&capacity);
  if (data == nullptr) return nullptr;
  return std::unique_ptr<FrameBuffer>(new FrameBuffer(static_cast<uint8_t*>(data), capacity));
}

void FrameBuffer::release_huge(std::unique_ptr<FrameBuffer> buffer) {
  if (!buffer) return;
  std::lock_guard<std::mutex> lock(g_huge_pool_mutex);
  if (g_huge_pool == nullptr) g_huge_pool = new std::vector<std::unique_ptr<FrameBuffer>>();
  if (g_huge_pool->size() < kHugePoolMax) g_huge_pool->push_back(std::move(buffer));
}

namespace {
std::string dir_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}
}  // namespace

SysError Segment::open(const OpenRequest& request, std::unique_ptr<Segment>* out) {
  std::unique_ptr<Segment> segment(new Segment());
  segment->path_ = request.path;
  segment->offset_ = request.offset;
  segment->chain_crc_ = request.prev_crc;
  segment->salt_ = request.salt;
  if (request.offset % 8 != 0) {
    SysError e = make_error(EINVAL, "open", request.path);
    e.message = "EINVAL: segment offset " + std::to_string(request.offset) +
                " is not on an 8-byte frame boundary";
    return e;
  }

  switch (request.mode) {
    case WalModeOption::kBuffered:
      segment->mode_ = WalMode::kBuffered;
      segment->mode_reason_ = "buffered requested";
      break;
    case WalModeOption::kDirect:
      segment->mode_ = WalMode::kDirect;
      segment->mode_reason_ = "direct requested";
      break;
    case WalModeOption::kDsync:
      segment->mode_ = WalMode::kDsync;
      segment->mode_reason_ = "dsync requested";
      break;
    case WalModeOption::kAuto: {
      DirectProbe probe;
      std::string dir = dir_of(request.path);
      SysError e = probe_direct_io(dir, &probe);
      if (!e.ok()) return e;
      std::string fs;
      filesystem_type(dir, &fs);
      // tmpfs/ramfs: memory-backed; recent kernels accept O_DIRECT there but it buys nothing
      // (there is no device) and would only add block padding. Older kernels refuse it.
      bool memory_backed = fs == "tmpfs" || fs == "ramfs";
      bool direct = probe.usable && !memory_backed;
      segment->mode_ = direct ? WalMode::kDirect : WalMode::kBuffered;
      std::string why = memory_backed && probe.usable
                            ? "memory-backed filesystem: O_DIRECT is accepted but bypasses nothing"
                            : probe.reason;
      segment->mode_reason_ =
          std::string("auto: ") + (direct ? "direct" : "buffered") + " on " + fs + " (" + why + ")";
      break;
    }
  }

  int flags = O_RDWR | O_CLOEXEC;
  if (segment->mode_ == WalMode::kDirect) flags |= O_DIRECT;
  if (segment->mode_ == WalMode::kDsync) flags |= O_DSYNC;
  int fd = ::open(request.path.c_str(), flags);
  if (fd < 0) return make_error(errno, "open", request.path);
  segment->fd_ = fd;
  struct stat st;
  if (::fstat(fd, &st) != 0) return make_error(errno, "fstat", request.path);
  if (request.offset > static_cast<uint64_t>(st.st_size)) {
    SysError e = make_error(EINVAL, "open", request.path);
    e.message = "EINVAL: segment offset " + std::to_string(request.offset) +
                " is past the end of the file (" + std::to_string(st.st_size) + " bytes)";
    return e;
  }

  if (segment->mode_ == WalMode::kDirect) {
    segment->block_size_ = direct_block_size(fd);
    uint32_t block = segment->block_size_;
    uint64_t partial = request.offset % block;
    if (partial != 0) {
      // Continuing a segment whose end is not block aligned (written in another mode): the first
      // direct write must carry the bytes already in that block.
      void* buffer = aligned_alloc_or_null(block, block);
      if (buffer == nullptr) return make_error(ENOMEM, "posix_memalign", request.path);
      size_t got = 0;
      SysError e = pread_all(fd, buffer, block, request.offset - partial, request.path, &got);
      if (e.ok() && got < partial) {
        e = make_error(EINVAL, "pread", request.path);
        e.message = "EINVAL: segment offset " + std::to_string(request.offset) +
                    " is past the end of the file";
      }
      if (e.ok()) {
        const uint8_t* bytes = static_cast<const uint8_t*>(buffer);
        segment->prefix_.assign(bytes, bytes + partial);
      }
      std::free(buffer);
      if (!e.ok()) return e;
    }
  }
  *out = std::move(segment);
  return {};
}

Segment::~Segment() {
  abort();
  join();
  if (fd_ >= 0) ::close(fd_);
  FrameBuffer::release_huge(std::move(copy_buffer_));
}

void Segment::start(std::function<void(BatchGroup)> complete, std::function<void()> on_exit) {
  complete_ = std::move(complete);
  on_exit_ = std::move(on_exit);
  thread_ = std::thread([this] { run(); });
}

void Segment::submit(std::unique_ptr<Batch> batch) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(std::move(batch));
    submitted_.store(submitted_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
  }
  // No syscall unless the writer is asleep on the condition variable.
  wake_.notify_one();
}

void Segment::join() {
  if (thread_.joinable()) thread_.join();
}

void Segment::abort() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    abort_ = true;
  }
  wake_.notify_one();
}

void Segment::set_fault(FaultOp op, int err) {
  (op == FaultOp::kWrite ? fault_write_ : fault_sync_).store(err);
}

void Segment::set_hold(bool hold) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    hold_ = hold;
  }
  wake_.notify_one();
}

SegmentStats Segment::stats() const {
  return SegmentStats{writes_.load(), syncs_.load(), groups_.load()};
}

void Segment::poll_for_work(uint64_t taken) {
  if (submitted_.load(std::memory_order_acquire) != taken) return;
  // sched_yield, not a pause loop: a pause loop holds the CPU the woken JS thread is often
  // queued on (and under KVM, pause-loop exits deschedule the spinning vCPU anyway).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(kPollNs);
  for (;;) {
    sched_yield();
    if (submitted_.load(std::memory_order_acquire) != taken) return;
    if (std::chrono::steady_clock::now() >= deadline) return;
  }
}

void Segment::run() {
  uint64_t taken = 0;
  for (;;) {
    BatchGroup group;
    poll_for_work(taken);
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return abort_ || (!hold_ && !queue_.empty()); });
      if (abort_) break;
      group.reserve(queue_.size());
      taken = submitted_.load(std::memory_order_relaxed);
      while (!queue_.empty()) {
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    bool closing = group.back()->kind == Batch::Kind::kClose;
    process(group);
    groups_.fetch_add(1);
    complete_(std::move(group));
    if (closing) break;
  }
  if (on_exit_) on_exit_();
}

// Seals the batch's frames in place (chained crc; a COMMIT frame also gets its file offset and
// the crc it continues), recording the end of every mark. The frames were checked when
// submitted; they are checked again defensively, since a batch whose lengths no longer add up
// (or whose COMMIT frames moved) must never reach the file.
SysError Segment::seal_batch(Batch& batch, uint64_t start, uint32_t* crc) {
  uint8_t* frames = batch.buffer ? batch.buffer->data() : nullptr;
  size_t size = batch.size;
  if (size > 0 && (frames == nullptr || size > batch.buffer->capacity())) std::abort();
  batch.mark_results.clear();
  batch.mark_results.reserve(batch.marks.size());
  std::string problem = size == 0 ? "" : check_append_layout(frames, size, batch.marks.data(), batch.marks.size());
  uint32_t c = *crc;
  if (problem.empty()) {
    BatchWalk walk = walk_batch_frames(
        frames, size, batch.marks.data(), batch.marks.size(),
        [&](uint64_t at, uint32_t) {
          uint8_t* frame = frames + at;
          if (frame[4] != kTypeCommit) {
            c = seal_frame(frame, c, salt_);
          } else if (read_u64(frame + kFrameHeaderBytes + kCommitDurableOffsetAt) > start + at) {
            problem = "a COMMIT frame states a durable offset past itself";
          } else {
            c = seal_commit(frame, start + at, c, salt_);
          }
        },
        [&](size_t, uint64_t at) { batch.mark_results.emplace_back(start + at, c); });
    if (problem.empty() && (walk.end != size || walk.marks_taken != batch.marks.size())) {
      problem = "frames no longer add up";
    }
  }
  if (problem.empty()) {
    *crc = c;
    return {};
  }
  SysError e = make_error(EINVAL, mode_ == WalMode::kDirect ? "pwrite" : "pwritev", path_);
  e.message = "EINVAL: WAL frames of a queued batch changed before they were written (" + problem + "; nothing written)";
  return e;
}

void Segment::process(BatchGroup& group) {
  // Seal every frame in order, continuing the chain; note each batch's own end.
  uint64_t end = offset_;
  uint32_t crc = chain_crc_;
  bool any_data = false;
  bool want_sync = false;
  if (failed_.ok()) {
    for (auto& batch : group) {
      if (batch->kind == Batch::Kind::kAppend) {
        SysError e = seal_batch(*batch, end, &crc);
        if (!e.ok()) {
          failed_ = e;
          break;
        }
        end += batch->size;
        any_data = any_data || batch->size > 0;
        want_sync = want_sync || batch->sync;
      } else if (batch->kind == Batch::Kind::kSync) {
        want_sync = true;
      }
      batch->end_offset = end;
      batch->last_crc = crc;
    }
  }

  // Direct mode: pad the write out to the block size with one PAD frame (chained like any
  // frame), so the next write starts on a fresh block and a durable block is never rewritten.
  uint64_t pad = 0;
  uint32_t pad_crc = crc;
  if (failed_.ok() && mode_ == WalMode::kDirect && any_data) {
    pad = pad_frame_bytes(end, block_size_);
    if (pad > 0) {
      uint8_t header[kFrameHeaderBytes] = {0};
      write_u32(header, static_cast<uint32_t>(pad - kFrameHeaderBytes));
      header[4] = kTypePad;
      // A PAD payload is zeros: crc over the header then (pad - 16) zero bytes.
      uint8_t prefix[12];
      write_u32(prefix, salt_);
      std::memcpy(prefix + 4, header, 8);
      static const uint8_t kZeros[4096] = {0};
      pad_crc = crc32c_update(crc, prefix, sizeof prefix);
      for (uint64_t left = pad - kFrameHeaderBytes; left > 0;) {
        size_t n = left > sizeof kZeros ? sizeof kZeros : static_cast<size_t>(left);
        pad_crc = crc32c_update(pad_crc, kZeros, n);
        left -= n;
      }
      for (auto& batch : group) {
        if (batch->end_offset == end) {
          batch->end_offset = end + pad;
          batch->last_crc = pad_crc;
        }
        for (auto& mark : batch->mark_results) {
          if (mark.first == end) mark = {end + pad, pad_crc};
        }
      }
    }
  }

  if (failed_.ok() && any_data) {
    SysError e = write_group(group, end, pad, pad_crc);
    if (!e.ok()) failed_ = e;
  }
  if (failed_.ok() && want_sync && mode_ != WalMode::kDsync) {
    syncs_.fetch_add(1);
    int rc = ::fdatasync(fd_);
    int err = rc == 0 ? 0 : errno;
    int injected = fault_sync_.exchange(0);
    if (injected != 0) err = injected;
    if (err != 0) failed_ = make_error(err, "fdatasync", path_);
  }
  if (failed_.ok()) {
    offset_ = end + pad;
    chain_crc_ = pad > 0 ? pad_crc : crc;
    prefix_.clear();
  }

  for (auto& batch : group) {
    if (batch->kind == Batch::Kind::kClose) {
      int rc = ::close(fd_);
      fd_ = -1;
      if (rc != 0 && errno != EINTR) batch->error = make_error(errno, "close", path_);
      continue;
    }
    if (!failed_.ok()) batch->error = failed_;
  }
}

SysError Segment::write_group(BatchGroup& group, uint64_t end, uint64_t pad, uint32_t pad_crc) {
  writes_.fetch_add(1);
  int injected = fault_write_.exchange(0);
  if (injected != 0) return make_error(injected, mode_ == WalMode::kDirect ? "pwrite" : "pwritev", path_);

  if (mode_ != WalMode::kDirect) {
    std::vector<struct iovec> iov;
    iov.reserve(group.size());
    for (auto& batch : group) {
      if (batch->kind == Batch::Kind::kAppend && batch->size > 0) {
        iov.push_back({batch->buffer->data(), batch->size});
      }
    }
    return pwritev_all(fd_, iov.data(), static_cast<int>(iov.size()), offset_, path_);
  }

  // Direct: one contiguous aligned run of whole blocks, [partial-block prefix] frames… [PAD].
  uint64_t start = offset_ - prefix_.size();
  size_t total = static_cast<size_t>(end + pad - start);
  Batch* only = nullptr;  // the group's one append batch, when it has exactly one
  for (auto& batch : group) {
    if (batch->kind != Batch::Kind::kAppend || batch->size == 0) continue;
    if (only != nullptr) {
      only = nullptr;
      break;
    }
    only = batch.get();
  }
  uint8_t* out = nullptr;
  if (only != nullptr && prefix_.empty() &&
      reinterpret_cast<uintptr_t>(only->buffer->data()) % block_size_ == 0 &&
      only->buffer->capacity() >= total) {
    // The common case: written straight from the frame buffer, the PAD frame after the frames.
    out = only->buffer->data();
  } else {
    if (!copy_buffer_ || copy_buffer_->capacity() < total) {
      FrameBuffer::release_huge(std::move(copy_buffer_));
      copy_buffer_ = FrameBuffer::acquire_huge(total);
      if (!copy_buffer_) return make_error(ENOMEM, "posix_memalign", path_);
    }
    uint8_t* at = copy_buffer_->data();
    if (!prefix_.empty()) {
      std::memcpy(at, prefix_.data(), prefix_.size());
      at += prefix_.size();
    }
    for (auto& batch : group) {
      if (batch->kind == Batch::Kind::kAppend && batch->size > 0) {
        std::memcpy(at, batch->buffer->data(), batch->size);
        at += batch->size;
      }
    }
    out = copy_buffer_->data();
  }
  uint8_t* pad_at = out + (end - start);
  if (pad > 0) {
    std::memset(pad_at, 0, pad);
    write_u32(pad_at, static_cast<uint32_t>(pad - kFrameHeaderBytes));
    pad_at[4] = kTypePad;
    write_u32(pad_at + 8, pad_crc);
  }
  if (total % block_size_ != 0 || start % block_size_ != 0) {
    std::abort();  // invariant: a direct write covers whole blocks exactly
  }
  return pwrite_all(fd_, out, total, start, path_);
}

}  // namespace raftkv
