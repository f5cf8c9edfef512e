// The GPU's memory: a caching allocator per device, and device scratch buffers for the kernels. A freed block is
// kept by size class and handed out again for a request of the same class; since every kernel of a device runs on
// its one stream, a block is reusable as soon as the host frees it (stream-ordered reuse), with no event to wait
// for. A training step that repeats the shapes of the previous one calls cudaMalloc zero times.
#pragma once
#include <cuda_runtime.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>

#include "siglite/backends/backend.hpp"
#include "siglite/backends/cuda/common.cuh"

namespace siglite::cuda {

class DeviceAllocator : public Allocator {
 public:
  /// Requests below kLarge bytes are rounded up to kSmallRound bytes, larger ones to kLargeRound.
  static constexpr size_t kSmallRound = 512;
  static constexpr size_t kLarge = size_t(1) << 20;
  static constexpr size_t kLargeRound = size_t(2) << 20;

  explicit DeviceAllocator(int index) : index_(index) {}

  void* allocate(size_t bytes) override {
    const size_t size = round(bytes);
    std::lock_guard<std::mutex> lock(mu_);
    void* p = nullptr;
    auto it = free_.find(size);
    if (it != free_.end()) {
      p = it->second;
      free_.erase(it);
      stats_.bytes_cached -= static_cast<int64_t>(size);
      ++stats_.cache_hits;
    } else {
      DeviceGuard guard(index_);
      if (cudaMalloc(&p, size) != cudaSuccess) {
        (void)cudaGetLastError();
        release_cached_locked();
        if (cudaMalloc(&p, size) != cudaSuccess) {
          (void)cudaGetLastError();
          size_t free_bytes = 0, total_bytes = 0;
          (void)cudaMemGetInfo(&free_bytes, &total_bytes);
          throw Error(siglite::detail::cat("allocate: cuda:", index_, " is out of memory for ", bytes, " bytes (",
                                           free_bytes, " of ", total_bytes, " bytes free on the device; ",
                                           stats_.bytes_in_use, " bytes in use by siglite tensors)"));
        }
      }
      ++stats_.system_allocations;
    }
    stats_.bytes_in_use += static_cast<int64_t>(size);
    if (stats_.bytes_in_use > stats_.peak_bytes_in_use) stats_.peak_bytes_in_use = stats_.bytes_in_use;
    return p;
  }

  void deallocate(void* p, size_t bytes) override {
    if (p == nullptr) return;
    const size_t size = round(bytes);
    std::lock_guard<std::mutex> lock(mu_);
    free_.emplace(size, p);
    stats_.bytes_in_use -= static_cast<int64_t>(size);
    stats_.bytes_cached += static_cast<int64_t>(size);
  }

  void copy_from_host(void* dst, const void* src, size_t bytes) override {
    DeviceGuard guard(index_);
    SIGLITE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_of(index_)));
  }

  void copy_to_host(void* dst, const void* src, size_t bytes) override {
    DeviceGuard guard(index_);
    SIGLITE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_of(index_)));
    synchronize(index_);
  }

  void copy_within(void* dst, const void* src, size_t bytes) override {
    DeviceGuard guard(index_);
    SIGLITE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_of(index_)));
  }

  AllocatorStats stats() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }
  void reset_peak() override {
    std::lock_guard<std::mutex> lock(mu_);
    stats_.peak_bytes_in_use = stats_.bytes_in_use;
  }
  void empty_cache() override {
    std::lock_guard<std::mutex> lock(mu_);
    DeviceGuard guard(index_);
    release_cached_locked();
  }

 private:
  static size_t round(size_t bytes) {
    if (bytes == 0) bytes = 1;
    const size_t r = bytes < kLarge ? kSmallRound : kLargeRound;
    return (bytes + r - 1) / r * r;
  }
  /// cudaFree waits for the device, so no queued kernel still uses a block it returns.
  void release_cached_locked() {
    for (auto& [size, p] : free_) (void)cudaFree(p);
    free_.clear();
    stats_.bytes_cached = 0;
  }

  int index_;
  mutable std::mutex mu_;
  std::multimap<size_t, void*> free_;
  AllocatorStats stats_;
};

/// The allocator of device `index` (never destroyed: tensors may outlive statics).
inline DeviceAllocator& allocator_of(int index) {
  static std::array<DeviceAllocator*, kMaxDevices> slots{};
  static std::array<std::once_flag, kMaxDevices> once;
  std::call_once(once[static_cast<size_t>(index)],
                 [&] { slots[static_cast<size_t>(index)] = new DeviceAllocator(index); });
  return *slots[static_cast<size_t>(index)];
}

/// A scratch buffer of n elements of the current device, from its caching allocator, returned when it goes out
/// of scope: the kernels queued before then still own it, which stream order makes safe.
template <typename T>
class Workspace {
 public:
  explicit Workspace(int64_t n)
      : index_(current_device()), bytes_(static_cast<size_t>(n > 0 ? n : 1) * sizeof(T)),
        data_(static_cast<T*>(allocator_of(index_).allocate(bytes_))) {}
  ~Workspace() { allocator_of(index_).deallocate(data_, bytes_); }
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;
  T* get() const { return data_; }

 private:
  int index_;
  size_t bytes_;
  T* data_;
};

}  // namespace siglite::cuda
