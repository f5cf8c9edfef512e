// How float32 matrix products may compute, process-wide, as torch.set_float32_matmul_precision names it.
#pragma once
#include <atomic>

#include "siglite/core/error.hpp"

namespace siglite {

/// Highest: float32 products (the default). High: TF32 tensor-core products (10-bit mantissas, float32 sums) where a
/// device has them, CUDA from sm_80; the CPU has none and computes float32 either way.
enum class MatmulPrecision { Highest, High };

namespace detail {
inline std::atomic<MatmulPrecision>& matmul_precision_slot() {
  static std::atomic<MatmulPrecision> slot{MatmulPrecision::Highest};
  return slot;
}
}  // namespace detail

inline MatmulPrecision float32_matmul_precision() {
  return detail::matmul_precision_slot().load(std::memory_order_relaxed);
}
/// Sets the precision of the float32 matrix products queued from now on; returns the previous one.
inline MatmulPrecision set_float32_matmul_precision(MatmulPrecision p) {
  return detail::matmul_precision_slot().exchange(p);
}

}  // namespace siglite
