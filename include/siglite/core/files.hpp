// Atomic file writes, the one way siglite saves a file: the bytes go to a temporary file beside the target
// (same directory, so the same file system) that is renamed over the target once complete and closed. A failed
// or interrupted save never leaves a half-written file in place of a good one.
#pragma once
#include <atomic>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <functional>
#include <ostream>
#include <string>
#include <system_error>

#include "siglite/core/error.hpp"

#if defined(_WIN32)
#include <process.h>
#else
#include <unistd.h>
#endif

namespace siglite {

namespace detail {
/// ": " and the system's message for errno (a full disk, a file size limit), or nothing when errno is 0.
inline std::string system_error_text() {
  const int e = errno;
  return e == 0 ? std::string() : ": " + std::error_code(e, std::generic_category()).message();
}
}  // namespace detail

/// Writes a file atomically: `write` fills the stream of a temporary file beside `path` (named
/// `path`.tmp-PID-COUNTER), which is then renamed over `path`. On any failure, an exception from `write`
/// included, the temporary file is removed and an existing `path` is left as it was; the siglite::Error
/// reads "`what`: `path`: the problem" (an exception from `write` is rethrown as it is).
inline void write_file_atomic(const std::filesystem::path& path, const std::function<void(std::ostream&)>& write,
                              const std::string& what) {
  static std::atomic<unsigned> counter{0};
#if defined(_WIN32)
  const int pid = _getpid();
#else
  const int pid = static_cast<int>(getpid());
#endif
  const std::string tmp = detail::cat(path.string(), ".tmp-", pid, "-", counter++);
  const auto remove_tmp = [&] {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
  };
  const auto give_up = [&](const std::string& problem) {
    remove_tmp();
    throw Error(detail::cat(what, ": ", path.string(), ": ", problem));
  };
  {
    errno = 0;
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) give_up(detail::cat("cannot create the temporary file ", tmp, detail::system_error_text()));
    errno = 0;
    try {
      write(out);
    } catch (...) {
      out.close();
      remove_tmp();
      throw;
    }
    out.flush();
    if (!out) give_up(detail::cat("write error in the temporary file ", tmp, detail::system_error_text()));
    out.close();
    if (out.fail()) give_up(detail::cat("cannot close the temporary file ", tmp, detail::system_error_text()));
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) give_up(detail::cat("cannot rename the temporary file ", tmp, " over it: ", ec.message()));
}

/// Writes `bytes` to `path` atomically, as above.
inline void write_file_atomic(const std::filesystem::path& path, const std::string& bytes, const std::string& what) {
  write_file_atomic(
      path, [&bytes](std::ostream& out) { out.write(bytes.data(), static_cast<std::streamsize>(bytes.size())); },
      what);
}

}  // namespace siglite
