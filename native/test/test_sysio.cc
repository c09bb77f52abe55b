#include <fcntl.h>
#include <cstring>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "sysio.h"

using namespace raftkv;

TEST("dir sync: a real directory syncs; a FIFO's kernel EINVAL is 'unsupported'; ENOENT is an error") {
  std::string dir = testing::scratch_dir();
  DirSync result;
  CHECK(sync_directory(dir, &result).ok());
  CHECK(result.supported);
  std::string fifo = dir + "/fifo";
  CHECK_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  result = DirSync{};
  SysError e = sync_directory(fifo, &result);
  CHECK(e.ok());
  CHECK(!result.supported);
  CHECK_EQ(result.err, EINVAL);
  CHECK_EQ(errno_name(result.err), std::string("EINVAL"));
  SysError missing = sync_directory(dir + "/missing", &result);
  CHECK_EQ(missing.err, ENOENT);
  CHECK_EQ(missing.syscall, std::string("open"));
}

TEST("create_segment_file: zero, fallocate and none give the size; an existing file is refused") {
  std::string dir = testing::scratch_dir();
  for (auto strategy : {Preallocate::kZero, Preallocate::kFallocate, Preallocate::kNone}) {
    std::string path = dir + "/seg" + std::to_string(static_cast<int>(strategy));
    std::string used;
    CHECK(create_segment_file(path, 3 << 20, strategy, &used).ok());
    struct stat st;
    CHECK_EQ(::stat(path.c_str(), &st), 0);
    CHECK_EQ(static_cast<long long>(st.st_size), 3LL << 20);
    if (strategy != Preallocate::kNone) CHECK(st.st_blocks * 512 >= (3LL << 20));
    SysError again = create_segment_file(path, 4096, strategy, &used);
    CHECK_EQ(again.err, EEXIST);
  }
}

TEST("flock: a second lock is ELOCKED until released; errno names round-trip") {
  std::string path = testing::scratch_dir() + "/LOCK";
  int fd = -1;
  CHECK(lock_file(path, &fd).ok());
  int fd2 = -1;
  SysError busy = lock_file(path, &fd2);
  CHECK_EQ(busy.err, EWOULDBLOCK);
  CHECK(busy.message.rfind("ELOCKED", 0) == 0);
  unlock_file(fd);
  CHECK(lock_file(path, &fd2).ok());
  unlock_file(fd2);
  CHECK_EQ(errno_from_name("EIO"), EIO);
  CHECK_EQ(errno_name(ENOSPC), std::string("ENOSPC"));
}

TEST("filesystem type and pwritev_all across many iovecs") {
  std::string dir = testing::scratch_dir();
  std::string fs;
  CHECK(filesystem_type(dir, &fs).ok());
  CHECK(!fs.empty());
  std::string path = dir + "/v";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT, 0644);
  CHECK(fd >= 0);
  // More iovecs than IOV_MAX, of uneven sizes.
  std::vector<std::vector<uint8_t>> parts;
  std::vector<struct iovec> iov;
  size_t total = 0;
  for (int i = 0; i < 3000; i++) parts.emplace_back(static_cast<size_t>(1 + i % 17), static_cast<uint8_t>(i));
  for (auto& p : parts) {
    iov.push_back({p.data(), p.size()});
    total += p.size();
  }
  CHECK(pwritev_all(fd, iov.data(), static_cast<int>(iov.size()), 8, path).ok());
  std::vector<uint8_t> back(total);
  size_t got = 0;
  CHECK(pread_all(fd, back.data(), total, 8, path, &got).ok());
  ::close(fd);
  CHECK_EQ(got, total);
  size_t at = 0;
  for (auto& p : parts) {
    CHECK(std::memcmp(back.data() + at, p.data(), p.size()) == 0);
    at += p.size();
  }
}

TEST("raw write+sync loop writes and times every iteration") {
  std::string path = testing::scratch_dir() + "/raw";
  std::vector<double> latencies(20, -1);
  double seconds = 0;
  CHECK(raw_write_sync_loop(path, 4096, 20, false, &seconds, latencies.data()).ok());
  CHECK(seconds > 0);
  for (double l : latencies) CHECK(l >= 0);
}
