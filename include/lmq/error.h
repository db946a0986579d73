// lmq's one error type. Every failure a user can cause (a bad file, a bad flag, a bad number)
// is thrown as lmq::Error with a single line naming the file or option and the problem;
// the CLI prints it as "lmq: error: <what>" and exits with status 1.
#pragma once
#include <fmt/format.h>

#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace lmq {

// Messages quote names and values taken from files and flags (a GGUF key, a scheme string,
// libsentencepiece's report on a model's bytes). A control character among them (a newline,
// a terminal escape sequence) would break the one-line rule or drive the user's terminal, so
// each is written as \xNN.
inline std::string one_line(const std::string& s) {
  std::string r;
  r.reserve(s.size());
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u != 0x7f) {
      r += c;
      continue;
    }
    static constexpr char kHex[] = "0123456789abcdef";
    r += {'\\', 'x', kHex[u >> 4], kHex[u & 15]};
  }
  return r;
}

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(one_line(what)) {}
};

template <typename... Args>
[[noreturn]] void fail(fmt::format_string<Args...> f, Args&&... args) {
  throw Error(fmt::format(f, std::forward<Args>(args)...));
}

// Internal invariants — programmer errors, never something a user's input can cause — abort
// with the place and the condition instead of going down the user-error path (lmq::Error).
[[noreturn]] inline void check_failed(const char* file, int line, const char* cond, const std::string& msg) {
  std::fprintf(stderr, "lmq: internal error: %s:%d: %s (%s)\n", file, line, msg.c_str(), cond);
  std::abort();
}
#define LMQ_CHECK(cond, ...)                                                               \
  do {                                                                                    \
    if (!(cond)) [[unlikely]]                                                             \
      ::lmq::check_failed(__FILE__, __LINE__, #cond, ::fmt::format(__VA_ARGS__));         \
  } while (0)
// A place the code cannot reach when its invariants hold (a switch over every enum value).
#define LMQ_UNREACHABLE(...) ::lmq::check_failed(__FILE__, __LINE__, "unreachable", ::fmt::format(__VA_ARGS__))

// Checked arithmetic for sizes that come from files: a hostile header must not wrap around.
inline uint64_t checked_mul(uint64_t a, uint64_t b, const char* what) {
  uint64_t r;
  if (__builtin_mul_overflow(a, b, &r)) fail("{}: size overflows 64 bits", what);
  return r;
}
inline uint64_t checked_add(uint64_t a, uint64_t b, const char* what) {
  uint64_t r;
  if (__builtin_add_overflow(a, b, &r)) fail("{}: size overflows 64 bits", what);
  return r;
}

}  // namespace lmq
