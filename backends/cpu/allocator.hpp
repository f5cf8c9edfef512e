// The CPU's memory: a caching allocator of host memory; a training step that repeats the shapes of the
// previous one takes all its buffers from the cache and never calls the system allocator.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

#ifdef __linux__
#include <sys/mman.h>
#endif

#include "siglite/backends/backend.hpp"

namespace siglite::cpu {

/// Caching allocator for host memory. Freed blocks are kept by size class (rounded up to 256
/// bytes) and handed out again for a request of the same class. A block of kHugePage bytes or more
/// starts on a kHugePage boundary and, on Linux, its whole 2 MiB pages are advised MADV_HUGEPAGE, so a
/// kernel whose transparent huge pages are "madvise" or "always" backs them with huge pages: fewer TLB
/// misses in the GEMMs and elementwise passes over activations, and one page fault per 2 MiB instead of
/// 512 on first touch.
class HostAllocator : public Allocator {
 public:
  static constexpr size_t kAlignment = 64;
  static constexpr size_t kHugePage = size_t(2) << 20;

  void* allocate(size_t bytes) override {
    const size_t size = round(bytes);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = free_.find(size);
    void* p = nullptr;
    if (it != free_.end()) {
      p = it->second;
      free_.erase(it);
      stats_.bytes_cached -= static_cast<int64_t>(size);
      ++stats_.cache_hits;
    } else {
      p = system_allocate(size);
      if (!p) {
        release_cached_locked();
        p = system_allocate(size);
      }
      if (!p) throw Error(detail::cat("allocate: out of host memory for ", bytes, " bytes"));
      ++stats_.system_allocations;
    }
    stats_.bytes_in_use += static_cast<int64_t>(size);
    if (stats_.bytes_in_use > stats_.peak_bytes_in_use) stats_.peak_bytes_in_use = stats_.bytes_in_use;
    return p;
  }

  void deallocate(void* p, size_t bytes) override {
    const size_t size = round(bytes);
    std::lock_guard<std::mutex> lock(mu_);
    free_.emplace(size, p);
    stats_.bytes_in_use -= static_cast<int64_t>(size);
    stats_.bytes_cached += static_cast<int64_t>(size);
  }

  void empty_cache() override {
    std::lock_guard<std::mutex> lock(mu_);
    release_cached_locked();
  }

  AllocatorStats stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

  void reset_peak() override {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.peak_bytes_in_use = stats_.bytes_in_use;
  }

 void copy_from_host(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void copy_to_host(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void copy_within(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }

 private:
  static size_t round(size_t bytes) { return bytes == 0 ? 256 : (bytes + 255) / 256 * 256; }

  static void* system_allocate(size_t size) {
    if (size < kHugePage) return std::aligned_alloc(kAlignment, size);
    // aligned_alloc takes a multiple of the alignment; the rounding past `size` is never touched, so it
    // stays address space only.
    void* p = std::aligned_alloc(kHugePage, (size + kHugePage - 1) / kHugePage * kHugePage);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    // Only the pages the block fills: a huge page over its tail would make resident memory it never uses.
    // Advice the kernel does not take leaves ordinary pages, so its result is not checked.
    if (p) madvise(p, size / kHugePage * kHugePage, MADV_HUGEPAGE);
#endif
    return p;
  }

  void release_cached_locked() {
    for (auto& [size, p] : free_) std::free(p);
    free_.clear();
    stats_.bytes_cached = 0;
  }

  mutable std::mutex mu_;
  std::multimap<size_t, void*> free_;
  AllocatorStats stats_;
};

/// The process's host allocator (never destroyed: storages may outlive statics).
inline HostAllocator& host_allocator() {
  static HostAllocator* a = new HostAllocator();
  return *a;
}

/// A block of host memory from host_allocator() for the length of a scope.
struct ScratchBuffer {
  explicit ScratchBuffer(size_t n) : bytes(n), data(host_allocator().allocate(n)) {}
  ~ScratchBuffer() { host_allocator().deallocate(data, bytes); }
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  size_t bytes;
  void* data;
};

}  // namespace siglite::cpu
