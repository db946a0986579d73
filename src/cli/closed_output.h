// What lmq does when the reader of its standard output goes away (`lmq inspect M | head -1`):
// stop quietly, leave no partial file, and exit with the status of a closed pipe (SIGPIPE, 141
// in the shell), as `cat` or `seq` do. SIGPIPE's default action would kill the process at
// whatever write found the pipe closed, possibly in the middle of writing an output file whose
// temporary would then stay behind; so SIGPIPE is ignored, a closed stdout surfaces as EPIPE or
// as ClosedOutput thrown from a check between work stages, the stack unwinds (AtomicFile removes
// its temporary), and only then does the process end by SIGPIPE.
#pragma once
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <system_error>

#include "lmq/error.h"

namespace lmq::cli {

// Thrown when stdout's reader has gone; not an lmq::Error: nothing is printed for it.
struct ClosedOutput {};

inline void ignore_sigpipe() { std::signal(SIGPIPE, SIG_IGN); }

[[noreturn]] inline void exit_as_closed_pipe() {
  std::signal(SIGPIPE, SIG_DFL);
  std::raise(SIGPIPE);
  std::_Exit(128 + SIGPIPE);  // not reached: the default action of SIGPIPE ends the process
}

// True when stdout is a pipe or socket whose reading end is closed (poll reports POLLERR on the
// writing end then); a long command checks this between stages so it stops early instead of
// finishing work nobody will read.
inline bool stdout_reader_gone() {
  struct stat st {};
  if (fstat(STDOUT_FILENO, &st) != 0 || !(S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) return false;
  pollfd p{STDOUT_FILENO, 0, 0};
  return poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP)) != 0;
}

inline void throw_if_stdout_gone() {
  if (stdout_reader_gone()) throw ClosedOutput{};
}

// Flushes stdout; a closed pipe becomes ClosedOutput, any other failure (a full disk behind a
// redirection) one error line.
inline void flush_stdout() {
  if (std::fflush(stdout) == 0) return;
  if (errno == EPIPE) throw ClosedOutput{};
  fail("standard output: write failed: {}", std::system_category().message(errno));
}

inline bool is_closed_pipe(const std::system_error& e) { return e.code().value() == EPIPE; }

}  // namespace lmq::cli
