// The kernel set: every computation siglite does on tensor memory goes through these interfaces. A
// backend implements them once per device type and registers them (backend.hpp); an op asks
// kernels::on<T>(device) for the set of its tensors' device and never names a backend. Every pointer to
// elements is a device pointer (Tensor::device_ptr()): only the backend may dereference it. No
// autograd here, and no argument checking beyond what only the data can show: the ops check shapes,
// devices and sizes before they call.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

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
  Neg, Exp, Log, Sqrt, Rsqrt, Abs, Sin, Cos, Tanh, Sigmoid, LogSigmoid, Softplus, Relu, GeluTanh, GeluErf,
  Pow, AddScalar, MulScalar
};

enum class Reduce { Sum, Max };

/// The distributions of the random kernel, each with two parameters p and q: uniform in [p, q), normal with mean p
/// and standard deviation q, and Bernoulli (q with probability p, else 0).
enum class Random { Uniform, Normal, Bernoulli };

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

/// The tiled sigmoid loss over one block of logits t x_i . y_j + b between x [n, d] and y [m, d] (row-major,
/// contiguous): t' and b are one-element device buffers, the logits are computed `tile` x `tile` at a time and
/// never all held. Pair (i, j) is positive (label +1) where `positives` and j == i + positive_offset, negative
/// (label -1) elsewhere; the sum is divided by `divisor`. A batch of n pairs is the block n x n, offset 0, divisor
/// n; the chunked loss of a batch spread over devices is made of such blocks (docs/distributed.md).
struct SigmoidLossArgs {
  int64_t n = 0, m = 0, d = 0, tile = 0;
  bool positives = true;
  int64_t positive_offset = 0;
  double divisor = 1;
};

/// In the tile whose first row is row i0 and first column is column j0 of the block, the label +1 sits at column
/// c == r + sigmoid_loss_diagonal(a, i0, j0) of row r; a block without positives gets a diagonal no column reaches.
inline int64_t sigmoid_loss_diagonal(const SigmoidLossArgs& a, int64_t i0, int64_t j0) {
  return a.positives ? i0 + a.positive_offset - j0 : a.m + 1;
}

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

/// A contiguous device buffer of n elements, one of the many a multi-tensor kernel takes.
template <typename T>
struct Span {
  T* data;
  int64_t n;
};

/// Moving and setting elements: what every tensor type needs (float, double, int64_t).
template <typename T>
class MemoryKernels {
 public:
  virtual ~MemoryKernels() = default;
  /// dst = src, element by element, both strided, same shape.
  virtual void copy(const View<const T>& src, const View<T>& dst) const = 0;
  virtual void fill(T* dst, int64_t n, T value) const = 0;
  /// dst[i] = start + T(i) * step for i < n.
  virtual void arange(T* dst, int64_t n, T start, T step) const = 0;
};

/// The arithmetic of the floating-point tensors (float, double).
template <typename T>
class Kernels : public MemoryKernels<T> {
 public:
  /// out (contiguous, shape out_shape) = a op b, where a and b are already broadcast to out_shape
  /// (stride 0 along broadcast axes).
  virtual void binary(Binary op, const View<const T>& a, const View<const T>& b, T* out) const = 0;
  virtual void unary(Unary op, const T* x, T* y, int64_t n, T param) const = 0;
  /// dst (contiguous, src's shape) = src's elements converted to T.
  virtual void convert(const View<const int64_t>& src, T* dst) const = 0;
  virtual void convert(const View<const float>& src, T* dst) const = 0;
  virtual void convert(const View<const double>& src, T* dst) const = 0;
  /// out[i] for i < n: value i % per of block i / per (per = philox::per_block<T>) of the Philox4x32-10 stream of
  /// `key`, made by philox::sample under `dist` with parameters p and q (backends/philox.hpp). A pure function of
  /// (key, i): the same bits on every backend that computes the sample's arithmetic as the CPU does.
  virtual void random(Random dist, T* out, int64_t n, uint64_t key, T p, T q) const = 0;
  /// gx = gy * f'(x), with y = f(x) given too (some derivatives are cheaper from y; either may be null where
  /// the derivative does not read it).
  virtual void unary_backward(Unary op, const T* x, const T* y, const T* gy, T* gx, int64_t n, T param) const = 0;
  /// Reduces the trailing `x.shape.size() - kept` axes of x into out (contiguous, the kept axes).
  virtual void reduce(Reduce op, const View<const T>& x, size_t kept, T* out) const = 0;
  /// indices[r, :] = the columns of the k largest elements of row r of x [rows, cols], largest first: a stable
  /// descending sort's first k (equal elements in column order, NaN above every number).
  virtual void topk(const View<const T>& x, int64_t k, int64_t* indices) const = 0;
  virtual void gemm(const GemmArgs<T>& g, const T* a, const T* b, T* c) const = 0;

  /// Linear layer: y [rows, out] = x [rows, in] @ w^T (w [out, in]) + bias (may be null), then, when `act` is
  /// given, a [rows, out] = act(y), y keeping the pre-activation unless a == y. `owner`, when given, keeps w
  /// alive: the backend's weight cache (Backend::open_weight_cache) may then keep w in its own layout.
  virtual void linear_forward(const T* x, const T* w, const T* bias, T* y, std::optional<Unary> act, T* a,
                              int64_t rows, int64_t in, int64_t out,
                              const std::shared_ptr<const void>& owner) const = 0;
  /// Its gradients from ga (the gradient of a when `act` is given, else of y): gy [rows, out] receives the
  /// pre-activation gradient when `act` is given (y or a may be null where act's derivative does not read it);
  /// gx, gw, gb are overwritten where not null; x may be null when gw is, w when gx is.
  virtual void linear_backward(const T* x, const T* w, const T* y, const T* a, std::optional<Unary> act,
                               const T* ga, T* gy, T* gx, T* gw, T* gb, int64_t rows, int64_t in,
                               int64_t out) const = 0;

  /// Softmax (or log-softmax) over the last axis of a [rows, cols] buffer. A row whose every entry is -inf (a
  /// fully masked row) gives zeros (log-softmax: -inf) and passes no gradient.
  virtual void softmax(const T* x, T* y, int64_t rows, int64_t cols, bool log) const = 0;
  virtual void softmax_backward(const T* y, const T* gy, T* gx, int64_t rows, int64_t cols, bool log) const = 0;

  /// Layer norm over the last axis; w and b may be null. mean and rstd ([rows]) are kept for backward.
  virtual void layer_norm(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, int64_t rows, int64_t cols,
                          T eps) const = 0;
  /// gx, and gw and gb when not null (overwritten, not accumulated).
  virtual void layer_norm_backward(const T* x, const T* w, const T* mean, const T* rstd, const T* gy, T* gx, T* gw,
                                   T* gb, int64_t rows, int64_t cols) const = 0;

  /// Attention forward: p [batch, heads, lq, lk] receives the attention weights (kept for backward),
  /// out [batch, lq, heads * dv] (contiguous) the result. A query row whose every key is masked with -inf
  /// attends to nothing: its weights and its output are zeros.
  virtual void attention_forward(const AttentionArgs<T>& a, const T* q, const T* k, const T* v, T* p,
                                 T* out) const = 0;
  /// Attention backward from gout [batch, lq, heads * dv] (contiguous): gq, gk, gv ([batch, length, ...] with the
  /// row strides of the args, overwritten) where not null. The mask gets no gradient.
  virtual void attention_backward(const AttentionArgs<T>& a, const T* q, const T* k, const T* v, const T* p,
                                  const T* gout, T* gq, T* gk, T* gv) const = 0;

  /// out[o, i, :] = x[o, idx[i], :] for x [outer, n_src, inner], out [outer, n_idx, inner]. An index outside
  /// [0, n_src) is an Error naming `op`, the index and its position (raised by the first host synchronisation
  /// at the latest).
  virtual void gather(const char* op, const T* x, const int64_t* idx, T* out, int64_t outer, int64_t n_src,
                      int64_t n_idx, int64_t inner) const = 0;
  /// gx[o, idx[i], :] += g[o, i, :]; gx must be zeroed by the caller; idx was checked by gather.
  virtual void scatter_add(const T* g, const int64_t* idx, T* gx, int64_t outer, int64_t n_src, int64_t n_idx,
                           int64_t inner) const = 0;

  /// Copies [N,C,H,W] images into [N, (H/P)*(W/P), C*P*P] patches (row-major patch grid, each
  /// patch flattened as (c, ky, kx) to match a conv weight [D,C,P,P]), or back when `to_images`.
  virtual void patchify(T* images, T* patches, int64_t n, int64_t c, int64_t h, int64_t w, int64_t p,
                        bool to_images) const = 0;

  /// The tiled sigmoid loss of docs/loss.md: loss[0] = -sum_ij log_sigmoid(label_ij (exp(t'[0]) x_i . y_j + b[0]))
  /// / divisor over the block of SigmoidLossArgs.
  virtual void sigmoid_loss_forward(const SigmoidLossArgs& a, const T* x, const T* y, const T* t_prime,
                                    const T* bias, T* loss) const = 0;
  /// Its gradients, scaled by the loss's gradient g[0]: dx [n, d] and dy [m, d] where not null (overwritten), and the
  /// gradients of t' and b in dt_prime[0] and dbias[0].
  virtual void sigmoid_loss_backward(const SigmoidLossArgs& a, const T* x, const T* y, const T* t_prime,
                                     const T* bias, const T* g, T* dx, T* dy, T* dt_prime, T* dbias) const = 0;

  /// In-place optimizer updates of a contiguous parameter p from its gradient g and its state
  /// buffers (each of n elements).
  virtual void adamw_update(T* p, const T* g, T* exp_avg, T* exp_avg_sq, int64_t n, const AdamWArgs& a) const = 0;
  virtual void sgd_update(T* p, const T* g, T* momentum_buffer, int64_t n, const SgdArgs& a) const = 0;
  virtual void lion_update(T* p, const T* g, T* exp_avg, int64_t n, const LionArgs& a) const = 0;

  /// norm[0] (a double on the device) = the L2 norm of all the buffers together, summed in double in a fixed
  /// order: the same bits for any number of threads.
  virtual void global_norm(const std::vector<Span<const T>>& xs, double* norm) const = 0;
  /// Multiplies every buffer by max_norm / (norm[0] + 1e-6) where norm[0] is finite and that factor is below 1,
  /// else leaves them: gradient clipping with the norm left on the device.
  virtual void clip_by_norm(const std::vector<Span<T>>& xs, const double* norm, double max_norm) const = 0;
};

}  // namespace siglite::kernels
