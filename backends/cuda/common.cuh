// What every CUDA kernel file shares: error checks that throw siglite::Error, the one stream of each device,
// launch sizes, a strided view that device code can index, and the device faults (a bad index found by a kernel)
// that the next host synchronisation raises as an Error.
//
// Kernels run on the calling thread's current CUDA device (cudaSetDevice), on that device's stream: one device per
// process or per thread, as the distributed trainer has it. Every kernel of a device is ordered on its one stream,
// so a block freed by the host after a launch can be handed to the next launch without waiting.
#pragma once
#include <cuda_runtime.h>

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "siglite/backends/kernels.hpp"
#include "siglite/core/error.hpp"
#include "siglite/core/shape.hpp"

#define SIGLITE_CUDA_CHECK(expr)                                                                         \
  do {                                                                                                   \
    const cudaError_t siglite_cuda_status = (expr);                                                      \
    if (siglite_cuda_status != cudaSuccess)                                                              \
      throw ::siglite::Error(::siglite::detail::cat("CUDA: ", #expr, " failed: ",                       \
                                                   cudaGetErrorString(siglite_cuda_status)));            \
  } while (0)

/// After a kernel launch: a bad configuration is an Error at once (faults inside the kernel surface at the next
/// synchronisation).
#define SIGLITE_CUDA_LAUNCHED() SIGLITE_CUDA_CHECK(cudaGetLastError())

namespace siglite::cuda {

/// Devices one process may address.
constexpr int kMaxDevices = 64;

/// The number of CUDA devices, 0 where the driver or the GPU is missing (any error counts as none).
inline int device_count() {
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      (void)cudaGetLastError();
      return 0;
    }
    return n < kMaxDevices ? n : kMaxDevices;
  }();
  return count;
}

inline int current_device() {
  int d = 0;
  SIGLITE_CUDA_CHECK(cudaGetDevice(&d));
  return d;
}

/// Makes `index` the current device for its lifetime, then restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int index) : previous_(current_device()) {
    if (index != previous_) SIGLITE_CUDA_CHECK(cudaSetDevice(index));
  }
  ~DeviceGuard() {
    int now = previous_;
    if (cudaGetDevice(&now) == cudaSuccess && now != previous_) (void)cudaSetDevice(previous_);
  }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_;
};

namespace detail {
/// slots[index], made by make() on first use with device `index` current.
template <typename R>
R& per_device(std::array<R, kMaxDevices>& slots, std::array<std::once_flag, kMaxDevices>& once, int index,
              R (*make)()) {
  std::call_once(once[static_cast<size_t>(index)], [&] {
    DeviceGuard guard(index);
    slots[static_cast<size_t>(index)] = make();
  });
  return slots[static_cast<size_t>(index)];
}
}  // namespace detail

/// The stream of device `index` (made on first use, never destroyed): every kernel and copy of that device runs
/// on it.
inline cudaStream_t stream_of(int index) {
  static std::array<cudaStream_t, kMaxDevices> streams{};
  static std::array<std::once_flag, kMaxDevices> once;
  return detail::per_device<cudaStream_t>(streams, once, index, [] {
    cudaStream_t s = nullptr;
    SIGLITE_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    return s;
  });
}

/// The stream of the current device.
inline cudaStream_t stream() { return stream_of(current_device()); }

/// +inf of T in host and device code alike (std::numeric_limits is host-only without --expt-relaxed-constexpr).
template <typename T>
__host__ __device__ inline T infinity() {
  if constexpr (sizeof(T) == sizeof(float)) return __builtin_huge_valf();
  else return __builtin_huge_val();
}

/// Threads per block of the elementwise kernels, and the grid that covers n elements with grid-stride loops.
constexpr int kThreads = 256;
inline unsigned blocks_for(int64_t n, int threads = kThreads) {
  const int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 65535 * 8 ? 65535 * 8 : b));
}

/// The rank a strided view may have in device code.
constexpr int kMaxRank = 8;

/// A kernels::View flattened into a struct passed by value to a kernel: element `linear` (row-major over shape)
/// lives at data[offset(linear)].
template <typename T>
struct StridedView {
  T* data;
  int rank;
  int64_t shape[kMaxRank];
  int64_t strides[kMaxRank];

  __host__ __device__ int64_t offset(int64_t linear) const {
    int64_t off = 0;
    for (int i = rank - 1; i >= 0; --i) {
      off += (linear % shape[i]) * strides[i];
      linear /= shape[i];
    }
    return off;
  }
};

template <typename T>
StridedView<T> strided(T* data, const Shape& shape, const Shape& strides) {
  SIGLITE_CHECK(shape.size() <= static_cast<size_t>(kMaxRank), "CUDA kernels take tensors of rank at most ", kMaxRank,
                ", not ", shape.size());
  StridedView<T> v{};
  v.data = data;
  v.rank = static_cast<int>(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) {
    v.shape[i] = shape[i];
    v.strides[i] = strides[i];
  }
  return v;
}

template <typename T>
StridedView<T> strided(const kernels::View<T>& v) {
  return strided(v.data, v.shape, v.strides);
}

/// A bad index met by a kernel, written to host memory the device maps, raised by check_faults() after the next
/// synchronisation of the device: the kernels never wait for the host to look.
struct Fault {
  int set;
  int op;
  int64_t index;
  int64_t position;
  int64_t bound;
};

/// Records the first fault of a device (later ones are dropped until it is raised).
__device__ inline void report_fault(Fault* f, int op, int64_t index, int64_t position, int64_t bound) {
  if (atomicCAS(&f->set, 0, 1) == 0) {
    f->op = op;
    f->index = index;
    f->position = position;
    f->bound = bound;
    __threadfence_system();
  }
}

namespace detail {
struct FaultSlots {
  std::array<Fault*, kMaxDevices> host{};
  std::array<Fault*, kMaxDevices> device{};
  std::array<std::once_flag, kMaxDevices> once;
};
inline FaultSlots& fault_slots() {
  static FaultSlots* s = new FaultSlots();
  return *s;
}
/// The names of the ops whose kernels may report faults, by the number a kernel reports.
inline std::vector<std::string>& fault_ops() {
  static std::vector<std::string>* names = new std::vector<std::string>();
  return *names;
}
inline std::mutex& fault_ops_mutex() {
  static std::mutex m;
  return m;
}
inline void make_fault_slot(int index) {
  FaultSlots& s = fault_slots();
  std::call_once(s.once[static_cast<size_t>(index)], [&] {
    void* p = nullptr;
    SIGLITE_CUDA_CHECK(cudaHostAlloc(&p, sizeof(Fault), cudaHostAllocMapped));
    *static_cast<Fault*>(p) = Fault{};
    void* d = nullptr;
    SIGLITE_CUDA_CHECK(cudaHostGetDevicePointer(&d, p, 0));
    s.host[static_cast<size_t>(index)] = static_cast<Fault*>(p);
    s.device[static_cast<size_t>(index)] = static_cast<Fault*>(d);
  });
}
}  // namespace detail

/// The device's address of the current device's fault slot, to pass to a kernel.
inline Fault* fault_slot() {
  const int index = current_device();
  detail::make_fault_slot(index);
  return detail::fault_slots().device[static_cast<size_t>(index)];
}

/// The number a kernel reports for `op` (its name is kept for the message).
inline int fault_op(const char* op) {
  std::lock_guard<std::mutex> lock(detail::fault_ops_mutex());
  auto& names = detail::fault_ops();
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == op) return static_cast<int>(i);
  names.emplace_back(op);
  return static_cast<int>(names.size() - 1);
}

/// Raises the fault a kernel of device `index` reported, if any, and clears it; call after a synchronisation.
inline void check_faults(int index) {
  Fault* f = detail::fault_slots().host[static_cast<size_t>(index)];
  if (f == nullptr || f->set == 0) return;
  const Fault copy = *f;
  *f = Fault{};
  std::string op;
  {
    std::lock_guard<std::mutex> lock(detail::fault_ops_mutex());
    op = detail::fault_ops().at(static_cast<size_t>(copy.op));
  }
  throw Error(siglite::detail::cat(op, ": index ", copy.index, " at position ", copy.position,
                                   " is out of range [0, ", copy.bound, ")"));
}

/// Waits for the work of device `index` and raises its faults.
inline void synchronize(int index) {
  SIGLITE_CUDA_CHECK(cudaStreamSynchronize(stream_of(index)));
  check_faults(index);
}

}  // namespace siglite::cuda
