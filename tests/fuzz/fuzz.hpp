// What every fuzz target shares. siglite's readers take paths, so each input is written to a file of this
// process first. The only outcomes an input may have are a result and a siglite::Error that names the file: any
// other exception escapes to libFuzzer, which reports it as a crash, as it does out-of-bounds accesses, undefined
// behaviour (the targets are built with ASan and UBSan), allocations beyond -malloc_limit_mb and hangs.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <siglite/backends/cpu.hpp>  // the CPU device, where the readers put their tensors
#include <siglite/core/error.hpp>

namespace fuzz {

/// This process's directory for its input files, removed at exit (the path is never destroyed, so the exit
/// handler can still use it).
inline const std::filesystem::path& work_dir() {
  static const std::filesystem::path* dir = [] {
    const auto* d = new std::filesystem::path(std::filesystem::temp_directory_path() /
                                              ("siglite-fuzz-" + std::to_string(getpid())));
    std::filesystem::create_directories(*d);
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(*dir, ec);
    });
    return d;
  }();
  return *dir;
}

/// Writes the input to the file `name` of the work directory and returns its path.
inline std::string as_file(const uint8_t* data, size_t size, const std::string& name) {
  const std::string path = (work_dir() / name).string();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path;
}

/// Runs `read`; a siglite::Error is an accepted outcome when its message names `path`.
template <typename F>
void result_or_error(const std::string& path, F&& read) {
  try {
    read();
  } catch (const siglite::Error& e) {
    if (std::string(e.what()).find(path) == std::string::npos) {
      std::fprintf(stderr, "a siglite::Error that does not name the file %s: %s\n", path.c_str(), e.what());
      std::abort();
    }
  }
}

}  // namespace fuzz
