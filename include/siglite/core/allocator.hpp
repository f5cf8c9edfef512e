// Storage: a block of one device's memory, taken from and returned to that device's allocator (each
// backend's own, caching). The memory functions below reach any device's allocator.
#pragma once
#include <cstddef>

#include "siglite/backends/backend.hpp"
#include "siglite/core/device.hpp"

namespace siglite {

/// A block of device memory shared by a tensor and all its views.
class Storage {
 public:
  Storage(size_t bytes, Device device)
      : bytes_(bytes), device_(device), allocator_(&backends::of(device).allocator(device.index())) {
    data_ = allocator_->allocate(bytes);
  }
  ~Storage() { allocator_->deallocate(data_, bytes_); }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  /// The block's address in its device's memory: for kernels and copies, never dereferenced by the host unless
  /// the device is the CPU.
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }
  Allocator& allocator() const { return *allocator_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
  Allocator* allocator_;
};

/// The counters of device d's caching allocator.
inline AllocatorStats memory_stats(Device d = Device::cpu()) { return backends::of(d).allocator(d.index()).stats(); }
/// Starts device d's peak count again from what is in use now.
inline void reset_peak_memory(Device d = Device::cpu()) { backends::of(d).allocator(d.index()).reset_peak(); }
/// Returns device d's cached free blocks to the system.
inline void empty_cache(Device d = Device::cpu()) { backends::of(d).allocator(d.index()).empty_cache(); }

}  // namespace siglite
