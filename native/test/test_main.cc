#include <cstdlib>
#include <cstring>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

namespace testing {
namespace {
bool g_failed = false;
std::string g_root;
int g_counter = 0;
}  // namespace

std::vector<TestCase>& registry() {
  static std::vector<TestCase> tests;
  return tests;
}

void fail(const char* file, int line, const std::string& what) {
  g_failed = true;
  std::fprintf(stderr, "    FAILED at %s:%d: %s\n", file, line, what.c_str());
}

bool current_failed() { return g_failed; }

std::string scratch_dir() {
  std::string dir = g_root + "/t" + std::to_string(++g_counter);
  if (::mkdir(dir.c_str(), 0755) != 0) {
    std::fprintf(stderr, "cannot create %s: %s\n", dir.c_str(), std::strerror(errno));
    std::abort();
  }
  return dir;
}

}  // namespace testing

static int remove_entry(const char* path, const struct stat*, int, struct FTW*) {
  return ::remove(path);
}

int main(int argc, char** argv) {
  const char* base = std::getenv("RAFTKV_TEST_DIR");
  std::string root_template = std::string(base != nullptr ? base : ".") + "/native-test-XXXXXX";
  std::vector<char> buffer(root_template.begin(), root_template.end());
  buffer.push_back('\0');
  if (::mkdtemp(buffer.data()) == nullptr) {
    std::fprintf(stderr, "mkdtemp %s: %s\n", root_template.c_str(), std::strerror(errno));
    return 2;
  }
  testing::g_root = buffer.data();
  const char* filter = argc > 1 ? argv[1] : nullptr;
  int passed = 0;
  int failed = 0;
  for (const testing::TestCase& test : testing::registry()) {
    if (filter != nullptr && std::strstr(test.name, filter) == nullptr) continue;
    testing::g_failed = false;
    std::fprintf(stderr, "  %s\n", test.name);
    test.body();
    if (testing::g_failed) failed++;
    else passed++;
  }
  ::nftw(testing::g_root.c_str(), remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  std::printf("%d passed, %d failed\n", passed, failed);
  return failed == 0 ? 0 : 1;
}
