#include "sysio.h"

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <memory>

namespace raftkv {
namespace {

struct ErrnoName {
  int err;
  const char* name;
};

const ErrnoName kErrnoNames[] = {
    {EPERM, "EPERM"},       {ENOENT, "ENOENT"},       {ESRCH, "ESRCH"},
    {EINTR, "EINTR"},       {EIO, "EIO"},             {ENXIO, "ENXIO"},
    {E2BIG, "E2BIG"},       {EBADF, "EBADF"},         {EAGAIN, "EAGAIN"},
    {ENOMEM, "ENOMEM"},     {EACCES, "EACCES"},       {EFAULT, "EFAULT"},
    {EBUSY, "EBUSY"},       {EEXIST, "EEXIST"},       {EXDEV, "EXDEV"},
    {ENODEV, "ENODEV"},     {ENOTDIR, "ENOTDIR"},     {EISDIR, "EISDIR"},
    {EINVAL, "EINVAL"},     {ENFILE, "ENFILE"},       {EMFILE, "EMFILE"},
    {ETXTBSY, "ETXTBSY"},   {EFBIG, "EFBIG"},         {ENOSPC, "ENOSPC"},
    {ESPIPE, "ESPIPE"},     {EROFS, "EROFS"},         {EMLINK, "EMLINK"},
    {EPIPE, "EPIPE"},       {ERANGE, "ERANGE"},       {ENAMETOOLONG, "ENAMETOOLONG"},
    {ENOSYS, "ENOSYS"},     {ENOTEMPTY, "ENOTEMPTY"}, {ELOOP, "ELOOP"},
    {ENOTSUP, "ENOTSUP"},   {EDQUOT, "EDQUOT"},       {ESTALE, "ESTALE"},
    {ETIMEDOUT, "ETIMEDOUT"}, {ENOLCK, "ENOLCK"},     {EOVERFLOW, "EOVERFLOW"},
    {ECANCELED, "ECANCELED"}, {ENOTCONN, "ENOTCONN"}, {ECONNRESET, "ECONNRESET"},
#if EOPNOTSUPP != ENOTSUP
    {EOPNOTSUPP, "EOPNOTSUPP"},
#endif
#if EWOULDBLOCK != EAGAIN
    {EWOULDBLOCK, "EWOULDBLOCK"},
#endif
};

struct FsMagic {
  uint64_t magic;
  const char* name;
};

const FsMagic kFilesystems[] = {
    {0xEF53, "ext4"},  // ext2/ext3/ext4 share one magic
    {0x58465342, "xfs"},       {0x9123683E, "btrfs"},     {0x01021994, "tmpfs"},
    {0x858458F6, "ramfs"},     {0x786F4256, "vboxsf"},    {0x01021997, "9p"},
    {0x65735546, "fuse"},      {0x6969, "nfs"},           {0xFF534D42, "cifs"},
    {0xFE534D42, "smb2"},      {0x517B, "smb"},           {0x794C7630, "overlay"},
    {0x2FC12FC1, "zfs"},       {0xF2F52010, "f2fs"},      {0xCA451A4E, "bcachefs"},
    {0x00C36400, "ceph"},      {0x4D44, "vfat"},          {0x2011BAB0, "exfat"},
    {0x5346544E, "ntfs"},      {0x7366746E, "ntfs3"},     {0x73717368, "squashfs"},
    {0x01161970, "gfs2"},      {0x9FA0, "proc"},          {0x62656572, "sysfs"},
    {0xF15F, "ecryptfs"},      {0x6B414653, "afs"},       {0x47504653, "gpfs"},
    {0x0BD00BD0, "lustre"},    {0x3153464A, "jfs"},       {0x52654973, "reiserfs"},
    {0x013111A8, "ibrix"},     {0x24051905, "ubifs"},     {0x28CD3D45, "cramfs"},
};

// Closes an fd on scope exit unless released.
class FdGuard {
 public:
  explicit FdGuard(int fd) : fd_(fd) {}
  ~FdGuard() {
    if (fd_ >= 0) ::close(fd_);
  }
  FdGuard(const FdGuard&) = delete;
  FdGuard& operator=(const FdGuard&) = delete;
  int get() const { return fd_; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

 private:
  int fd_;
};

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
using AlignedBuffer = std::unique_ptr<uint8_t, FreeDeleter>;

AlignedBuffer aligned_zeroed(size_t alignment, size_t size) {
  void* p = aligned_alloc_or_null(alignment, size);
  if (p != nullptr) std::memset(p, 0, size);
  return AlignedBuffer(static_cast<uint8_t*>(p));
}

// Zero-fills [0, size) with large aligned writes.
SysError write_zeros(int fd, uint64_t size, const std::string& path) {
  constexpr size_t kChunk = 1 << 20;
  AlignedBuffer zeros = aligned_zeroed(4096, kChunk);
  if (!zeros) return make_error(ENOMEM, "posix_memalign", path);
  for (uint64_t at = 0; at < size;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, size - at));
    SysError e = pwrite_all(fd, zeros.get(), n, at, path);
    if (!e.ok()) return e;
    at += n;
  }
  return {};
}

double now_seconds() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

}  // namespace

std::string errno_name(int err) {
  for (const ErrnoName& e : kErrnoNames) {
    if (e.err == err) return e.name;
  }
  return "E" + std::to_string(err);
}

int errno_from_name(const std::string& name) {
  for (const ErrnoName& e : kErrnoNames) {
    if (name == e.name) return e.err;
  }
  return 0;
}

std::string describe(const SysError& error) {
  std::string text = error.message.empty() ? errno_name(error.err) + ": " + std::strerror(error.err)
                                           : error.message;
  if (!error.syscall.empty()) text += ", " + error.syscall;
  if (!error.path.empty()) text += " '" + error.path + "'";
  return text;
}

SysError make_error(int err, const char* syscall, const std::string& path) {
  SysError e;
  e.err = err;
  e.syscall = syscall;
  e.path = path;
  return e;
}

SysError pwritev_all(int fd, const struct iovec* iov_in, int iovcnt, uint64_t offset,
                     const std::string& path) {
  // Copy: a short write advances through the vector in place.
  std::unique_ptr<struct iovec[]> iov(new struct iovec[iovcnt > 0 ? iovcnt : 1]);
  std::copy(iov_in, iov_in + iovcnt, iov.get());
  int first = 0;
  while (first < iovcnt && iov[first].iov_len == 0) first++;
  while (first < iovcnt) {
    int count = std::min(iovcnt - first, IOV_MAX);
    ssize_t n = ::pwritev(fd, iov.get() + first, count, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return make_error(errno, "pwritev", path);
    }
    if (n == 0) return make_error(EIO, "pwritev", path);  // no progress: never spin
    offset += static_cast<uint64_t>(n);
    size_t left = static_cast<size_t>(n);
    while (first < iovcnt && left >= iov[first].iov_len) {
      left -= iov[first].iov_len;
      first++;
    }
    if (left > 0) {
      iov[first].iov_base = static_cast<uint8_t*>(iov[first].iov_base) + left;
      iov[first].iov_len -= left;
    }
    while (first < iovcnt && iov[first].iov_len == 0) first++;
  }
  return {};
}

SysError pwrite_all(int fd, const void* data, size_t length, uint64_t offset,
                    const std::string& path) {
  const uint8_t* p = static_cast<const uint8_t*>(data);
  while (length > 0) {
    ssize_t n = ::pwrite(fd, p, length, static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      return make_error(errno, "pwrite", path);
    }
    if (n == 0) return make_error(EIO, "pwrite", path);
    p += n;
    length -= static_cast<size_t>(n);
    offset += static_cast<uint64_t>(n);
  }
  return {};
}

SysError pread_all(int fd, void* data, size_t length, uint64_t offset, const std::string& path,
                   size_t* bytes_read) {
  uint8_t* p = static_cast<uint8_t*>(data);
  size_t total = 0;
  while (total < length) {
    ssize_t n = ::pread(fd, p + total, length - total, static_cast<off_t>(offset + total));
    if (n < 0) {
      if (errno == EINTR) continue;
      return make_error(errno, "pread", path);
    }
    if (n == 0) break;  // end of file
    total += static_cast<size_t>(n);
  }
  *bytes_read = total;
  return {};
}

SysError read_whole_file(const std::string& path, uint8_t** bytes, uint64_t* size) {
  *bytes = nullptr;
  *size = 0;
  int raw = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (raw < 0) return make_error(errno, "open", path);
  FdGuard fd(raw);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return make_error(errno, "fstat", path);
  size_t length = static_cast<size_t>(st.st_size);
  uint8_t* buffer = static_cast<uint8_t*>(std::malloc(length > 0 ? length : 1));
  if (buffer == nullptr) return make_error(ENOMEM, "malloc", path);
  size_t got = 0;
  SysError e = pread_all(fd.get(), buffer, length, 0, path, &got);
  if (!e.ok()) {
    std::free(buffer);
    return e;
  }
  *bytes = buffer;
  *size = got;  // a file that shrank meanwhile: what was there
  return {};
}

void* huge_page_alloc_or_null(size_t* size) {
  size_t rounded = (*size + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  if (rounded == 0) rounded = kHugePageBytes;
  void* p = aligned_alloc_or_null(kHugePageBytes, rounded);
  if (p == nullptr) return nullptr;
#ifdef MADV_HUGEPAGE
  ::madvise(p, rounded, MADV_HUGEPAGE);  // advice only: small pages work too, just slower
#endif
  *size = rounded;
  return p;
}

void* aligned_alloc_or_null(size_t alignment, size_t size) {
  void* p = nullptr;
  if (posix_memalign(&p, alignment, size == 0 ? alignment : size) != 0) return nullptr;
  return p;
}

SysError create_segment_file(const std::string& path, uint64_t size_bytes, Preallocate strategy,
                             std::string* strategy_used) {
  int raw = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (raw < 0) return make_error(errno, "open", path);
  FdGuard fd(raw);
  auto fail = [&](SysError e) {
    ::close(fd.release());
    ::unlink(path.c_str());
    return e;
  };
  *strategy_used = strategy == Preallocate::kZero        ? "zero"
                   : strategy == Preallocate::kFallocate ? "fallocate"
                                                         : "none";
  if (strategy == Preallocate::kFallocate && size_bytes > 0) {
    int rc;
    do {
      rc = ::fallocate(fd.get(), 0, 0, static_cast<off_t>(size_bytes));
    } while (rc != 0 && errno == EINTR);
    if (rc != 0) {
      if (errno != EOPNOTSUPP && errno != ENOSYS) return fail(make_error(errno, "fallocate", path));
      strategy = Preallocate::kZero;  // not supported by this filesystem: zero-fill instead
      *strategy_used = "zero (fallocate unsupported)";
    }
  }
  if (strategy == Preallocate::kZero) {
    SysError e = write_zeros(fd.get(), size_bytes, path);
    if (!e.ok()) return fail(e);
  }
  if (::ftruncate(fd.get(), static_cast<off_t>(size_bytes)) != 0) {
    return fail(make_error(errno, "ftruncate", path));
  }
  if (::fsync(fd.get()) != 0) return fail(make_error(errno, "fsync", path));
  if (::close(fd.release()) != 0 && errno != EINTR) {
    int err = errno;
    ::unlink(path.c_str());
    return make_error(err, "close", path);
  }
  return {};
}

SysError sync_directory(const std::string& path, DirSync* result) {
  // No O_DIRECTORY: the tests reach a real kernel EINVAL through a FIFO (fsync of a pipe).
  int raw = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (raw < 0) return make_error(errno, "open", path);
  FdGuard fd(raw);
  int rc;
  do {
    rc = ::fsync(fd.get());
  } while (rc != 0 && errno == EINTR);
  if (rc == 0) {
    *result = DirSync{true, 0};
    return {};
  }
  int err = errno;
  if (err == EINVAL || err == ENOTSUP || err == EOPNOTSUPP || err == ENOSYS) {
    *result = DirSync{false, err};
    return {};
  }
  return make_error(err, "fsync", path);
}

uint32_t direct_block_size(int fd) {
  uint32_t size = 4096;
#ifdef STATX_DIOALIGN
  struct statx stx;
  if (::statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 && (stx.stx_mask & STATX_DIOALIGN) &&
      stx.stx_dio_offset_align > size) {
    size = stx.stx_dio_offset_align;
  }
#else
  (void)fd;
#endif
  return size;
}

SysError probe_direct_io(const std::string& dir, DirectProbe* result) {
  static std::atomic<unsigned> counter{0};
  std::string path = dir + "/.raftkv-odirect-probe-" + std::to_string(::getpid()) + "-" +
                     std::to_string(counter.fetch_add(1)) + ".tmp";
  int raw = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_DIRECT | O_CLOEXEC, 0600);
  if (raw < 0) {
    int err = errno;
    if (err == EINVAL) {
      std::string fs;
      filesystem_type(dir, &fs);
      *result = DirectProbe{false, 0,
                            "O_DIRECT refused by the filesystem (" + fs + "): open returned EINVAL"};
      return {};
    }
    return make_error(err, "open", path);
  }
  FdGuard fd(raw);
  uint32_t block = direct_block_size(fd.get());
  AlignedBuffer buffer = aligned_zeroed(block, block);
  if (!buffer) {
    ::unlink(path.c_str());
    return make_error(ENOMEM, "posix_memalign", path);
  }
  SysError e = pwrite_all(fd.get(), buffer.get(), block, 0, path);
  ::close(fd.release());
  ::unlink(path.c_str());
  if (!e.ok()) {
    if (e.err == EINVAL) {
      *result = DirectProbe{false, 0,
                            "O_DIRECT accepted at open but an aligned " + std::to_string(block) +
                                "-byte write failed with EINVAL"};
      return {};
    }
    return e;
  }
  *result = DirectProbe{true, block,
                        "O_DIRECT open and an aligned " + std::to_string(block) +
                            "-byte write succeeded"};
  return {};
}

SysError filesystem_type(const std::string& path, std::string* name) {
  struct statfs fs;
  if (::statfs(path.c_str(), &fs) != 0) return make_error(errno, "statfs", path);
  uint64_t magic = static_cast<uint64_t>(fs.f_type) & 0xFFFFFFFFu;
  for (const FsMagic& m : kFilesystems) {
    if (m.magic == magic) {
      *name = m.name;
      return {};
    }
  }
  char hex[24];
  std::snprintf(hex, sizeof hex, "0x%llx", static_cast<unsigned long long>(magic));
  *name = hex;
  return {};
}

SysError lock_file(const std::string& path, int* fd_out) {
  int raw = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (raw < 0) return make_error(errno, "open", path);
  FdGuard fd(raw);
  int rc;
  do {
    rc = ::flock(fd.get(), LOCK_EX | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    SysError e = make_error(errno, "flock", path);
    if (e.err == EWOULDBLOCK) e.message = "ELOCKED: locked by another process or handle";
    return e;
  }
  *fd_out = fd.release();
  return {};
}

void unlock_file(int fd) {
  ::flock(fd, LOCK_UN);
  ::close(fd);
}

SysError raw_write_sync_loop(const std::string& path, uint32_t write_bytes, uint32_t iterations,
                             bool direct, double* seconds, double* latencies_us) {
  uint64_t total = static_cast<uint64_t>(write_bytes) * iterations;
  {
    int raw = ::open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (raw < 0) return make_error(errno, "open", path);
    FdGuard prefill(raw);
    SysError e = write_zeros(prefill.get(), total, path);
    if (!e.ok()) return e;
    if (::fsync(prefill.get()) != 0) return make_error(errno, "fsync", path);
  }
  int raw = ::open(path.c_str(), O_RDWR | O_CLOEXEC | (direct ? O_DIRECT : 0));
  if (raw < 0) return make_error(errno, "open", path);
  FdGuard fd(raw);
  size_t alignment = direct ? direct_block_size(fd.get()) : 4096;
  AlignedBuffer data = aligned_zeroed(alignment, write_bytes);
  if (!data) return make_error(ENOMEM, "posix_memalign", path);
  std::memset(data.get(), 0x5A, write_bytes);
  double start = now_seconds();
  for (uint32_t i = 0; i < iterations; i++) {
    double t0 = now_seconds();
    SysError e =
        pwrite_all(fd.get(), data.get(), write_bytes, static_cast<uint64_t>(i) * write_bytes, path);
    if (!e.ok()) return e;
    if (::fdatasync(fd.get()) != 0) return make_error(errno, "fdatasync", path);
    latencies_us[i] = (now_seconds() - t0) * 1e6;
  }
  *seconds = now_seconds() - start;
  return {};
}

}  // namespace raftkv
