// Backends and their registry: one Backend per device type, holding that type's allocators and kernel
// sets; siglite looks one up by a tensor's Device and never names it. A backend registers itself once
// (backends/cpu.hpp does so for the CPU); a device type with none registered is an Error naming it.
// The models are ggml's backend interface (buffer type, buffer, device) and ATen's dispatch registry, in
// the form of one abstract class per concern.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "siglite/backends/kernels.hpp"
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

/// The memory of one device: blocks and the copies into, out of and within it. Every copy out of a device
/// to the host waits for the device's work before it: it is the host synchronisation a training step
/// keeps to one or two.
class Allocator {
 public:
  virtual ~Allocator() = default;
  /// A block of `bytes` device memory, or an Error naming the request when none can be had.
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* p, size_t bytes) = 0;
  virtual void copy_from_host(void* dst, const void* src, size_t bytes) = 0;
  virtual void copy_to_host(void* dst, const void* src, size_t bytes) = 0;
  /// Between two blocks of this device.
  virtual void copy_within(void* dst, const void* src, size_t bytes) = 0;
  virtual AllocatorStats stats() const = 0;
  virtual void reset_peak() = 0;
  /// Returns every cached block to the system.
  virtual void empty_cache() = 0;
};

/// What one device type provides. Kernel sets for float, double and the memory kernels of int64_t.
class Backend {
 public:
  virtual ~Backend() = default;
  /// The device type's name in Device::str() ("cpu", "cuda", ...).
  virtual std::string name() const = 0;
  virtual int device_count() const = 0;
  virtual Allocator& allocator(int index) = 0;
  virtual const kernels::Kernels<float>& f32() const = 0;
  virtual const kernels::Kernels<double>& f64() const = 0;
  virtual const kernels::MemoryKernels<int64_t>& i64() const = 0;

  /// Opens a cache of weights kept in the kernels' own layouts for this thread, alive while the returned handle
  /// is (siglite::InferenceMode holds one per backend); null where the backend keeps none. The weights must not
  /// change while it is open.
  virtual std::shared_ptr<void> open_weight_cache() { return nullptr; }
  /// How many weights the cache serving this thread holds (0 when none serves it).
  virtual size_t cached_weights() const { return 0; }
};

/// A Backend whose kernel sets are K<float>, K<double> and M<int64_t>, made with it: what a backend declares
/// beside them is its name, its devices and their allocators.
template <template <typename...> class K, template <typename...> class M>
class BackendOf : public Backend {
 public:
  const kernels::Kernels<float>& f32() const override { return f32_; }
  const kernels::Kernels<double>& f64() const override { return f64_; }
  const kernels::MemoryKernels<int64_t>& i64() const override { return i64_; }

 private:
  K<float> f32_;
  K<double> f64_;
  M<int64_t> i64_;
};

namespace backends {

namespace detail {
inline std::array<Backend*, kDeviceTypes>& table() {
  static std::array<Backend*, kDeviceTypes> t{};
  return t;
}
inline std::mutex& table_mutex() {
  static std::mutex m;
  return m;
}
}  // namespace detail

/// Makes `b` the backend of device type `type` for the rest of the process (it is never destroyed); returns true
/// so that a header can register from an inline variable's initialiser. A second registration for a type that
/// has one replaces it only with the same object.
inline bool register_backend(DeviceType type, Backend* b) {
  std::lock_guard<std::mutex> lock(detail::table_mutex());
  Backend*& slot = detail::table()[static_cast<size_t>(type)];
  SIGLITE_CHECK(slot == nullptr || slot == b, "register_backend: device type ", device_type_name(type),
                " has a backend already");
  slot = b;
  device_type_name(type) = b->name();
  return true;
}

/// The backends registered so far.
inline std::vector<Backend*> registered() {
  std::lock_guard<std::mutex> lock(detail::table_mutex());
  std::vector<Backend*> out;
  for (Backend* b : detail::table())
    if (b) out.push_back(b);
  return out;
}

/// Whether a backend serves this device type.
inline bool available(DeviceType type) { return detail::table()[static_cast<size_t>(type)] != nullptr; }

/// How many devices of this type the process has: 0 where no backend serves the type (a build without it) or the
/// backend finds none (a CUDA build on a machine without a GPU).
inline int device_count(DeviceType type) {
  Backend* b = detail::table()[static_cast<size_t>(type)];
  return b ? b->device_count() : 0;
}

/// The backend of `d`'s type, after checking that `d` names one of its devices.
inline Backend& of(Device d) {
  Backend* b = detail::table()[static_cast<size_t>(d.type())];
  SIGLITE_CHECK(b != nullptr, "device ", d, " is not available: no backend for ", device_type_name(d.type()),
                " is registered in this program (the CPU's comes with <siglite/siglite.hpp>; CUDA's with a build"
                " that has SIGLITE_WITH_CUDA)");
  SIGLITE_CHECK(d.index() >= 0 && d.index() < b->device_count(), "device ", d, " is not available: ", b->name(),
                " has ", b->device_count(), " device(s)");
  return *b;
}

/// Copies `bytes` from src on device `from` to dst on device `to`: within a device, into or out of the host, or
/// between two devices through a host buffer.
inline void copy_bytes(Device to, void* dst, Device from, const void* src, size_t bytes) {
  if (bytes == 0) return;
  if (to.is_cpu() && from.is_cpu()) {
    std::memcpy(dst, src, bytes);
  } else if (from.is_cpu()) {
    of(to).allocator(to.index()).copy_from_host(dst, src, bytes);
  } else if (to.is_cpu()) {
    of(from).allocator(from.index()).copy_to_host(dst, src, bytes);
  } else if (to == from) {
    of(to).allocator(to.index()).copy_within(dst, src, bytes);
  } else {
    std::vector<unsigned char> staging(bytes);
    of(from).allocator(from.index()).copy_to_host(staging.data(), src, bytes);
    of(to).allocator(to.index()).copy_from_host(dst, staging.data(), bytes);
  }
}

}  // namespace backends

namespace kernels {

namespace detail {
template <typename T>
struct KernelsOf {
  using type = Kernels<T>;
  static const type& get(Backend& b) {
    if constexpr (std::is_same_v<T, float>) return b.f32();
    else return b.f64();
  }
};
template <>
struct KernelsOf<int64_t> {
  using type = MemoryKernels<int64_t>;
  static const type& get(Backend& b) { return b.i64(); }
};
}  // namespace detail

/// The kernel set of element type T on device d: Kernels<T> for float and double, MemoryKernels<int64_t>.
template <typename T>
const typename detail::KernelsOf<T>::type& on(Device d) {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, int64_t>,
                "kernels exist for float, double and int64_t tensors");
  return detail::KernelsOf<T>::get(backends::of(d));
}

}  // namespace kernels

}  // namespace siglite
