// cuBLAS for the CUDA kernels: one handle per device, bound to the device's stream, and its errors as
// siglite::Error.
#pragma once
#include <cublas_v2.h>

#include <array>
#include <mutex>

#include "siglite/backends/cuda/common.cuh"
#include "siglite/core/precision.hpp"

#define SIGLITE_CUBLAS_CHECK(expr)                                                                         \
  do {                                                                                                     \
    const cublasStatus_t siglite_cublas_status = (expr);                                                   \
    if (siglite_cublas_status != CUBLAS_STATUS_SUCCESS)                                                    \
      throw ::siglite::Error(::siglite::detail::cat("cuBLAS: ", #expr, " failed: ",                       \
                                                   cublasGetStatusString(siglite_cublas_status)));         \
  } while (0)

namespace siglite::cuda {

/// The cuBLAS handle of the current device, on its stream, with the math mode float32_matmul_precision() asks for.
inline cublasHandle_t blas() {
  static std::array<cublasHandle_t, kMaxDevices> handles{};
  static std::array<std::once_flag, kMaxDevices> once;
  const int index = current_device();
  cublasHandle_t h = detail::per_device<cublasHandle_t>(handles, once, index, [] {
    cublasHandle_t made = nullptr;
    SIGLITE_CUBLAS_CHECK(cublasCreate(&made));
    SIGLITE_CUBLAS_CHECK(cublasSetStream(made, stream()));
    return made;
  });
  SIGLITE_CUBLAS_CHECK(
      cublasSetMathMode(h, float32_matmul_precision() == MatmulPrecision::High ? CUBLAS_TF32_TENSOR_OP_MATH
                                                                         : CUBLAS_DEFAULT_MATH));
  return h;
}

}  // namespace siglite::cuda
