// A deliberately tiny test harness (no downloads): TEST(name) registers a function; CHECK*
// record a failure with file:line and return from the test. Prints "N passed, M failed".
#pragma once

#include <cstdint>
#include <cstdio>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace testing {

struct TestCase {
  const char* name;
  std::function<void()> body;
};

std::vector<TestCase>& registry();
// Set by CHECK failures in the running test.
void fail(const char* file, int line, const std::string& what);
bool current_failed();
// A fresh scratch directory for the running test (under RAFTKV_TEST_DIR or ./native-test-tmp).
std::string scratch_dir();

struct Registrar {
  Registrar(const char* name, std::function<void()> body) { registry().push_back({name, body}); }
};

template <typename A, typename B>
std::string describe_pair(const A& a, const B& b) {
  std::ostringstream out;
  out << a << " vs " << b;
  return out.str();
}

}  // namespace testing

#define TEST_CONCAT2(a, b) a##b
#define TEST_CONCAT(a, b) TEST_CONCAT2(a, b)
#define TEST(name)                                                                    \
  static void TEST_CONCAT(test_, __LINE__)();                                         \
  static testing::Registrar TEST_CONCAT(registrar_, __LINE__)(name, TEST_CONCAT(test_, __LINE__)); \
  static void TEST_CONCAT(test_, __LINE__)()

#define CHECK(cond)                                              \
  do {                                                           \
    if (!(cond)) {                                               \
      testing::fail(__FILE__, __LINE__, "CHECK(" #cond ")");     \
      return;                                                    \
    }                                                            \
  } while (0)

#define CHECK_EQ(a, b)                                                                     \
  do {                                                                                     \
    auto check_a_ = (a);                                                                   \
    auto check_b_ = (b);                                                                   \
    if (!(check_a_ == check_b_)) {                                                         \
      testing::fail(__FILE__, __LINE__,                                                    \
                    "CHECK_EQ(" #a ", " #b "): " + testing::describe_pair(check_a_, check_b_)); \
      return;                                                                              \
    }                                                                                      \
  } while (0)
