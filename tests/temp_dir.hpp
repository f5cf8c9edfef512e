// The tests' scratch directory: TempDir makes a fresh, empty directory under the system temp directory and
// removes it with everything in it when it goes out of scope, whether the test passed, failed or threw.
#pragma once
#include <filesystem>
#include <random>
#include <string>
#include <system_error>

struct TempDir {
  std::filesystem::path path;  // siglite-test-<random>-<random> in std::filesystem::temp_directory_path()

  TempDir() {
    std::random_device rd;
    path = std::filesystem::temp_directory_path() /
           ("siglite-test-" + std::to_string(rd()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::filesystem::path operator/(const std::filesystem::path& name) const { return path / name; }
};
