// The kernel set: every computation siglite does goes through these functions. Each takes the
// device and raw buffers (contiguous unless a View with strides is passed) and dispatches to a
// backend. No autograd here. A CUDA backend implements the same set.
#pragma once
#include <cstdint>

#include "siglite/core/device.hpp"
#include "siglite/core/error.hpp"
#include "siglite/core/shape.hpp"

namespace siglite::kernels {

/// A strided window on a buffer: element (i0, i1, ...) lives at data[i0*strides[0] + i1*strides[1] + ...].
template <typename T>
struct View {
  T* data;
  Shape shape;
  Shape strides;
};

enum class Binary { Add, Sub, Mul, Div, Eq, Max };

/// Elementwise functions of one input; `param` is the exponent of Pow, the addend of AddScalar
/// and the factor of MulScalar.
enum class Unary {
  Neg, Exp, Log, Sqrt, Rsqrt, Abs, Tanh, Sigmoid, LogSigmoid, Softplus, Relu, GeluTanh, GeluErf,
  Pow, AddScalar, MulScalar
};

enum class Reduce { Sum, Max };

/// Row-major batched GEMM: C[b] = alpha * op(A[b]) @ op(B[b]) + beta * C[b], where op(A) is
/// [m,k] and op(B) is [k,n]. A batch stride of 0 broadcasts that operand over the batch.
template <typename T>
struct GemmArgs {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  int64_t lda = 0, ldb = 0, ldc = 0;
  int64_t batch = 1, stride_a = 0, stride_b = 0, stride_c = 0;
  T alpha = 1, beta = 0;
};

}  // namespace siglite::kernels

#include "backends/cpu/elementwise.hpp"
#include "backends/cpu/gemm.hpp"
#include "backends/cpu/nn.hpp"

namespace siglite::kernels {

namespace detail {
inline void require_cpu(Device d, const char* kernel) {
  SIGLITE_CHECK(d.is_cpu(), kernel, ": device ", d, " is not available (siglite was built without its backend)");
}
}  // namespace detail

/// dst = src, element by element, both strided, same shape.
template <typename T>
void copy(Device d, const View<const T>& src, const View<T>& dst) {
  detail::require_cpu(d, "copy");
  cpu::copy(src, dst);
}

template <typename T>
void fill(Device d, T* dst, int64_t n, T value) {
  detail::require_cpu(d, "fill");
  cpu::fill(dst, n, value);
}

/// out (contiguous, shape out_shape) = a op b, where a and b are already broadcast to out_shape
/// (stride 0 along broadcast axes).
template <typename T>
void binary(Device d, Binary op, const View<const T>& a, const View<const T>& b, T* out) {
  detail::require_cpu(d, "binary");
  cpu::binary(op, a, b, out);
}

template <typename T>
void unary(Device d, Unary op, const T* x, T* y, int64_t n, T param) {
  detail::require_cpu(d, "unary");
  cpu::unary(op, x, y, n, param);
}

/// gx = gy * f'(x), with y = f(x) given too (some derivatives are cheaper from y).
template <typename T>
void unary_backward(Device d, Unary op, const T* x, const T* y, const T* gy, T* gx, int64_t n, T param) {
  detail::require_cpu(d, "unary_backward");
  cpu::unary_backward(op, x, y, gy, gx, n, param);
}

/// Reduces the trailing `x.shape.size() - kept` axes of x into out (contiguous, the kept axes).
template <typename T>
void reduce(Device d, Reduce op, const View<const T>& x, size_t kept, T* out) {
  detail::require_cpu(d, "reduce");
  cpu::reduce(op, x, kept, out);
}

template <typename T>
void gemm(Device d, const GemmArgs<T>& g, const T* a, const T* b, T* c) {
  detail::require_cpu(d, "gemm");
  cpu::gemm(g, a, b, c);
}

/// Softmax (or log-softmax) over the last axis of a [rows, cols] buffer.
template <typename T>
void softmax(Device d, const T* x, T* y, int64_t rows, int64_t cols, bool log) {
  detail::require_cpu(d, "softmax");
  cpu::softmax(x, y, rows, cols, log);
}

template <typename T>
void softmax_backward(Device d, const T* y, const T* gy, T* gx, int64_t rows, int64_t cols, bool log) {
  detail::require_cpu(d, "softmax_backward");
  cpu::softmax_backward(y, gy, gx, rows, cols, log);
}

/// Layer norm over the last axis; w and b may be null. mean and rstd ([rows]) are kept for backward.
template <typename T>
void layer_norm(Device d, const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, int64_t rows,
                int64_t cols, T eps) {
  detail::require_cpu(d, "layer_norm");
  cpu::layer_norm(x, w, b, y, mean, rstd, rows, cols, eps);
}

/// gx, and gw and gb when not null (overwritten, not accumulated).
template <typename T>
void layer_norm_backward(Device d, const T* x, const T* w, const T* mean, const T* rstd, const T* gy,
                         T* gx, T* gw, T* gb, int64_t rows, int64_t cols) {
  detail::require_cpu(d, "layer_norm_backward");
  cpu::layer_norm_backward(x, w, mean, rstd, gy, gx, gw, gb, rows, cols);
}

/// out[o, i, :] = x[o, idx[i], :] for x [outer, n_src, inner], out [outer, n_idx, inner].
template <typename T>
void gather(Device d, const T* x, const int64_t* idx, T* out, int64_t outer, int64_t n_src, int64_t n_idx,
            int64_t inner) {
  detail::require_cpu(d, "gather");
  cpu::gather(x, idx, out, outer, n_src, n_idx, inner);
}

/// gx[o, idx[i], :] += g[o, i, :]; gx must be zeroed by the caller.
template <typename T>
void scatter_add(Device d, const T* g, const int64_t* idx, T* gx, int64_t outer, int64_t n_src,
                 int64_t n_idx, int64_t inner) {
  detail::require_cpu(d, "scatter_add");
  cpu::scatter_add(g, idx, gx, outer, n_src, n_idx, inner);
}

/// Copies [N,C,H,W] images into [N, (H/P)*(W/P), C*P*P] patches (row-major patch grid, each
/// patch flattened as (c, ky, kx) to match a conv weight [D,C,P,P]), or back when `to_images`.
template <typename T>
void patchify(Device d, T* images, T* patches, int64_t n, int64_t c, int64_t h, int64_t w, int64_t p,
              bool to_images) {
  detail::require_cpu(d, "patchify");
  cpu::patchify(images, patches, n, c, h, w, p, to_images);
}

}  // namespace siglite::kernels
