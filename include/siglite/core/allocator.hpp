// Storage and the per-device caching allocator: a training step that repeats the shapes of the
// previous one takes all its buffers from the cache and never calls the system allocator.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <new>

#ifdef __linux__
#include <sys/mman.h>
#endif

#include "siglite/core/device.hpp"
#include "siglite/core/error.hpp"

namespace siglite {

/// Counters of one device's caching allocator.
struct AllocatorStats {
  int64_t system_allocations = 0;  // blocks obtained from the system since start
  int64_t cache_hits = 0;          // requests served from the cache
  int64_t bytes_in_use = 0;        // bytes handed out and not yet returned
  int64_t bytes_cached = 0;        // bytes held in the cache, free for reuse
  int64_t peak_bytes_in_use = 0;
};

/// Caching allocator for host memory. Freed blocks are kept by size class (rounded up to 256
/// bytes) and handed out again for a request of the same class. A block of kHugePage bytes or more
/// starts on a kHugePage boundary and, on Linux, its whole 2 MiB pages are advised MADV_HUGEPAGE, so a
/// kernel whose transparent huge pages are "madvise" or "always" backs them with huge pages: fewer TLB
/// misses in the GEMMs and elementwise passes over activations, and one page fault per 2 MiB instead of
/// 512 on first touch.
class CpuAllocator {
 public:
  static constexpr size_t kAlignment = 64;
  static constexpr size_t kHugePage = size_t(2) << 20;

  static CpuAllocator& instance() {
    static CpuAllocator* a = new CpuAllocator();  // never destroyed: storages may outlive statics
    return *a;
  }

  void* allocate(size_t bytes) {
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

  void deallocate(void* p, size_t bytes) {
    const size_t size = round(bytes);
    std::lock_guard<std::mutex> lock(mu_);
    free_.emplace(size, p);
    stats_.bytes_in_use -= static_cast<int64_t>(size);
    stats_.bytes_cached += static_cast<int64_t>(size);
  }

  /// Returns every cached block to the system.
  void empty_cache() {
    std::lock_guard<std::mutex> lock(mu_);
    release_cached_locked();
  }

  AllocatorStats stats() const {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

  void reset_peak() {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.peak_bytes_in_use = stats_.bytes_in_use;
  }

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

/// A block of device memory shared by a tensor and all its views.
class Storage {
 public:
  Storage(size_t bytes, Device device) : bytes_(bytes), device_(device) {
    SIGLITE_CHECK(device.is_cpu(), "Storage: device ", device, " is not available in this build");
    data_ = CpuAllocator::instance().allocate(bytes);
  }
  ~Storage() { CpuAllocator::instance().deallocate(data_, bytes_); }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
};

}  // namespace siglite
