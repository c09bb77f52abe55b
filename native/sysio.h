// POSIX file-system primitives for the WAL, free of Node-API so the C++ tests (and sanitizers)
// can exercise them directly. Failures are reported as SysError values, never thrown.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <sys/uio.h>

namespace raftkv {

struct SysError {
  int err = 0;              // errno; 0 = no error
  std::string syscall;      // e.g. "fdatasync"
  std::string path;         // file the call was about
  std::string message;      // optional extra explanation (e.g. for ELOCKED)
  bool ok() const { return err == 0; }
};

// "EIO", "EINVAL", … ; "E<number>" for errnos not in the table.
std::string errno_name(int err);
// Parses an errno name back ("EIO" → 5); 0 when unknown.
int errno_from_name(const std::string& name);
// Error text in Node's style: "EIO: input/output error, fdatasync '/path'".
std::string describe(const SysError& error);

SysError make_error(int err, const char* syscall, const std::string& path);

// Writes all of `iov` at `offset`: EINTR is retried as a syscall and short writes continue where
// they stopped. Returns the first real error (the data may be partly written then).
SysError pwritev_all(int fd, const struct iovec* iov, int iovcnt, uint64_t offset,
                     const std::string& path);
SysError pwrite_all(int fd, const void* data, size_t length, uint64_t offset,
                    const std::string& path);
SysError pread_all(int fd, void* data, size_t length, uint64_t offset, const std::string& path,
                   size_t* bytes_read);

// Reads the whole file into a malloc'd buffer (*bytes, to free()); *size is what was read.
SysError read_whole_file(const std::string& path, uint8_t** bytes, uint64_t* size);

// Allocation aligned for O_DIRECT; released with free().
void* aligned_alloc_or_null(size_t alignment, size_t size);

// Huge-page size the kernel backs transparent huge pages with (2 MiB on x86-64 and 4K-page ARM).
constexpr size_t kHugePageBytes = 2u * 1024u * 1024u;
// *size rounded up to whole huge pages, aligned to one, and advised for transparent huge pages
// (MADV_HUGEPAGE; ignored where unsupported): a physically contiguous buffer is a handful of
// scatter-gather segments for an O_DIRECT write instead of one per 4 KiB page, which on virtio
// disks made 1 MiB direct writes ~3x faster (218 vs 630 us). Released with free().
void* huge_page_alloc_or_null(size_t* size);

enum class Preallocate { kZero, kFallocate, kNone };
// Creates `path` (it must not exist) with size_bytes reserved by `strategy`, then fsyncs it.
// fallocate falls back to zero-filling where the filesystem does not support it. On failure the
// partial file is removed.
SysError create_segment_file(const std::string& path, uint64_t size_bytes, Preallocate strategy,
                             std::string* strategy_used);

struct DirSync {
  bool supported = true;
  int err = 0;  // EINVAL / ENOTSUP / ENOSYS when !supported
};
// fsync of a directory. EINVAL, ENOTSUP/EOPNOTSUPP or ENOSYS from fsync mean "this filesystem
// cannot sync directories" and are reported in `result`; anything else is an error.
SysError sync_directory(const std::string& path, DirSync* result);

struct DirectProbe {
  bool usable = false;
  uint32_t block_size = 0;
  std::string reason;
};
// Opens a temporary file in `dir` with O_DIRECT and does one aligned write. EINVAL (from open or
// write) means unusable; other errors are real.
SysError probe_direct_io(const std::string& dir, DirectProbe* result);

// Alignment for O_DIRECT I/O on this open file: at least 4096 (a common physical sector; padding
// to a smaller logical block would let the device read-modify-write a sector that holds durable
// data), or the kernel's reported direct-I/O alignment where that is larger.
uint32_t direct_block_size(int fd);

// statfs f_type as a name: ext4, xfs, tmpfs, vboxsf, … ; "0x<hex>" when unknown.
SysError filesystem_type(const std::string& path, std::string* name);

// flock(LOCK_EX|LOCK_NB) on `path` (created if missing). On EWOULDBLOCK returns err=EWOULDBLOCK
// with message "ELOCKED". On success *fd_out holds the descriptor to release with unlock_file.
SysError lock_file(const std::string& path, int* fd_out);
void unlock_file(int fd);

// The benchmark's raw ceiling: pre-zero a file of write_bytes*iterations, fsync it, then time
// `iterations` rounds of pwrite(write_bytes at successive offsets) + fdatasync.
SysError raw_write_sync_loop(const std::string& path, uint32_t write_bytes, uint32_t iterations,
                             bool direct, double* seconds, double* latencies_us);

}  // namespace raftkv
