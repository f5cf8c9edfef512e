// The kernel set: every computation siglite does goes through these functions. Each takes the
// device and raw buffers (contiguous unless a View with strides is passed) and dispatches to a
// backend. No autograd here. A CUDA backend implements the same set.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>

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

/// One row-major GEMM, no batch: C [m, n] (leading dimension ldc) = alpha * op(A) @ op(B) + beta * C.
template <typename T>
GemmArgs<T> single_gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, int64_t lda, int64_t ldb,
                        int64_t ldc, T alpha = T(1), T beta = T(0)) {
  GemmArgs<T> g;
  g.trans_a = trans_a;
  g.trans_b = trans_b;
  g.m = m;
  g.n = n;
  g.k = k;
  g.lda = lda;
  g.ldb = ldb;
  g.ldc = ldc;
  g.alpha = alpha;
  g.beta = beta;
  return g;
}

/// Multi-head attention over [batch, length, heads * head_dim] buffers. q, k, v are read in place with
/// the given batch and row strides (a batch stride of 0 broadcasts one sequence over the batch); head h of
/// a row is its columns [h * dk, (h + 1) * dk) (dv for v). mask, when not null, is added to the scaled
/// scores, element (b, h, i, j) at b * mask_batch + h * mask_head + i * mask_row + j * mask_col. Backward
/// writes gq, gk and gv with the batch strides gq_batch, gk_batch, gv_batch and the row strides gq_row, gk_row,
/// gv_row: rows of heads * dk and heads * dv for separate gradients, of 3 * heads * dk for one packed q|k|v
/// gradient (whose q rows may be a single position of each batch item's L rows, batch stride L * 3 * heads * dk).
template <typename T>
struct AttentionArgs {
  int64_t batch = 0, heads = 0, lq = 0, lk = 0, dk = 0, dv = 0;
  int64_t q_batch = 0, q_row = 0, k_batch = 0, k_row = 0, v_batch = 0, v_row = 0;
  int64_t gq_batch = 0, gq_row = 0, gk_batch = 0, gk_row = 0, gv_batch = 0, gv_row = 0;
  const T* mask = nullptr;
  int64_t mask_batch = 0, mask_head = 0, mask_row = 0, mask_col = 0;
  T scale = 1;
};

/// One AdamW step (torch.optim.AdamW): bias_correction1/2 = 1 - beta1^t, 1 - beta2^t for the
/// parameter's step count t.
struct AdamWArgs {
  double lr = 0, beta1 = 0, beta2 = 0, eps = 0, weight_decay = 0;
  double bias_correction1 = 1, bias_correction2 = 1;
};

/// One SGD step (torch.optim.SGD); `first_step` starts the momentum buffer at the gradient.
struct SgdArgs {
  double lr = 0, momentum = 0, dampening = 0, weight_decay = 0;
  bool nesterov = false, first_step = false;
};

/// One LION step (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms").
struct LionArgs {
  double lr = 0, beta1 = 0, beta2 = 0, weight_decay = 0;
};

}  // namespace siglite::kernels

#include "backends/cpu/attention.hpp"
#include "backends/cpu/elementwise.hpp"
#include "backends/cpu/gemm.hpp"
#include "backends/cpu/linear.hpp"
#include "backends/cpu/loss.hpp"
#include "backends/cpu/nn.hpp"
#include "backends/cpu/optim.hpp"

namespace siglite::kernels {

/// Packed linear weights kept for reuse on one thread (see siglite::InferenceMode).
using cpu::PackedWeights;

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

/// Linear layer: y [rows, out] = x [rows, in] @ w^T (w [out, in]) + bias (may be null), then, when `act` is
/// given, a [rows, out] = act(y), y keeping the pre-activation. `owner`, when given, keeps w alive; then a
/// PackedWeights cache serving this thread may pack w once and reuse it.
template <typename T>
void linear_forward(Device d, const T* x, const T* w, const T* bias, T* y, std::optional<Unary> act, T* a,
                    int64_t rows, int64_t in, int64_t out, const std::shared_ptr<const void>& owner = nullptr) {
  detail::require_cpu(d, "linear_forward");
  cpu::linear_forward(x, w, bias, y, act, a, rows, in, out, owner);
}
/// Its gradients from ga (the gradient of a when `act` is given, else of y): gy receives the pre-activation
/// gradient when `act` is given (y or a may be null where act's derivative does not read it); gx, gw, gb are
/// overwritten where not null.
template <typename T>
void linear_backward(Device d, const T* x, const T* w, const T* y, const T* a, std::optional<Unary> act,
                     const T* ga, T* gy, T* gx, T* gw, T* gb, int64_t rows, int64_t in, int64_t out) {
  detail::require_cpu(d, "linear_backward");
  cpu::linear_backward(x, w, y, a, act, ga, gy, gx, gw, gb, rows, in, out);
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

/// Attention forward: p [batch, heads, lq, lk] receives the attention weights (kept for backward),
/// out [batch, lq, heads * dv] (contiguous) the result.
template <typename T>
void attention_forward(Device d, const AttentionArgs<T>& a, const T* q, const T* k, const T* v, T* p, T* out) {
  detail::require_cpu(d, "attention_forward");
  cpu::attention_forward(a, q, k, v, p, out);
}

/// Attention backward from gout [batch, lq, heads * dv] (contiguous): gq, gk, gv ([batch, length, ...] with the
/// row strides of the args, overwritten) where not null. The mask gets no gradient.
template <typename T>
void attention_backward(Device d, const AttentionArgs<T>& a, const T* q, const T* k, const T* v, const T* p,
                        const T* gout, T* gq, T* gk, T* gv) {
  detail::require_cpu(d, "attention_backward");
  cpu::attention_backward(a, q, k, v, p, gout, gq, gk, gv);
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

/// One tile of the sigmoid loss (the tiled loss calls it once per tile): z [rows, cols], leading dimension ld,
/// holds t * x_i . y_j; returns sum of -log_sigmoid(label * (z + bias)) in double, with label +1 on the pairs
/// where col == row + diag (the positives) and -1 elsewhere.
template <typename T>
double sigmoid_loss_tile(Device d, const T* z, int64_t rows, int64_t cols, int64_t ld, int64_t diag, T bias) {
  detail::require_cpu(d, "sigmoid_loss_tile");
  return cpu::sigmoid_loss_tile(z, rows, cols, ld, diag, bias);
}

/// Backward of one tile: overwrites z with G = (sigmoid(z + bias) - [col == row + diag]) * scale and adds
/// sum(G) to *sum_g and sum(G .* z) (z as given, so t * x_i . y_j) to *sum_gz: the gradients of b and t'.
template <typename T>
void sigmoid_loss_tile_backward(Device d, T* z, int64_t rows, int64_t cols, int64_t ld, int64_t diag, T bias,
                                T scale, double* sum_g, double* sum_gz) {
  detail::require_cpu(d, "sigmoid_loss_tile_backward");
  cpu::sigmoid_loss_tile_backward(z, rows, cols, ld, diag, bias, scale, sum_g, sum_gz);
}

/// Copies [N,C,H,W] images into [N, (H/P)*(W/P), C*P*P] patches (row-major patch grid, each
/// patch flattened as (c, ky, kx) to match a conv weight [D,C,P,P]), or back when `to_images`.
template <typename T>
void patchify(Device d, T* images, T* patches, int64_t n, int64_t c, int64_t h, int64_t w, int64_t p,
              bool to_images) {
  detail::require_cpu(d, "patchify");
  cpu::patchify(images, patches, n, c, h, w, p, to_images);
}

/// In-place optimizer updates of a contiguous parameter p from its gradient g and its state
/// buffers (each of n elements).
template <typename T>
void adamw_update(Device d, T* p, const T* g, T* exp_avg, T* exp_avg_sq, int64_t n, const AdamWArgs& a) {
  detail::require_cpu(d, "adamw_update");
  cpu::adamw_update(p, g, exp_avg, exp_avg_sq, n, a);
}

template <typename T>
void sgd_update(Device d, T* p, const T* g, T* momentum_buffer, int64_t n, const SgdArgs& a) {
  detail::require_cpu(d, "sgd_update");
  cpu::sgd_update(p, g, momentum_buffer, n, a);
}

template <typename T>
void lion_update(Device d, T* p, const T* g, T* exp_avg, int64_t n, const LionArgs& a) {
  detail::require_cpu(d, "lion_update");
  cpu::lion_update(p, g, exp_avg, n, a);
}

/// Sum of squares of a contiguous buffer, accumulated in double (gradient norms).
template <typename T>
double sum_squares(Device d, const T* x, int64_t n) {
  detail::require_cpu(d, "sum_squares");
  return cpu::sum_squares(x, n);
}

}  // namespace siglite::kernels
