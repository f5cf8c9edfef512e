// The SigLIP sigmoid loss (Algorithm 1 of Zhai et al. 2023), in two implementations of one function:
//   logits = exp(t') * zimg @ ztxt^T + b          [n, n]
//   loss   = -sum_ij log_sigmoid(label_ij * logits_ij) / n,   label +1 where i == j, -1 elsewhere.
// Naive materialises the logits and lets autograd differentiate; Tiled is one fused node that never
// holds more than a tile of them. docs/loss.md derives the gradient and explains both.
#pragma once
#include <algorithm>
#include <atomic>
#include <cmath>
#include <exception>
#include <vector>

// tensor.hpp first: included after autograd/node.hpp it would pull in the engine before NoGradGuard exists.
#include "siglite/core/tensor.hpp"
#include "siglite/autograd/node.hpp"
#include "siglite/loss/checks.hpp"
#include "siglite/ops/elementwise.hpp"
#include "siglite/ops/linalg.hpp"
#include "siglite/ops/reduce.hpp"

namespace siglite::loss {

enum class SigmoidImpl { Naive, Tiled };

namespace detail {

/// The teaching version: every step is an ordinary differentiable op, autograd does the backward.
/// Memory: several [n, n] tensors (the logits and the intermediates each op saves for backward).
template <typename T>
Tensor<T> sigmoid_loss_naive(const Tensor<T>& img, const Tensor<T>& txt, const Tensor<T>& t_prime,
                             const Tensor<T>& bias) {
  const int64_t n = img.shape()[0];
  const Tensor<T> logits = matmul(img, txt.t()) * exp(t_prime) + bias;  // [n, n]
  Tensor<T> labels = Tensor<T>::full({n, n}, T(-1));                     // -1: every other pair is a negative
  for (int64_t i = 0; i < n; ++i) labels.at({i, i}) = T(1);              // +1: image i belongs with text i
  return -sum(log_sigmoid(labels.to(img.device()) * logits)) / static_cast<T>(n);
}

/// Below this many multiply-adds (about 5 ms on one core) the tiled loss runs on one thread.
constexpr double kParallelWork = 1 << 24;

/// Calls f(i, j, z) once for every pair of row tile i and column tile j, in nt rounds: in round s row
/// tile i meets column tile (i + s) % nt. Within a round no two calls share a row tile or a column tile,
/// so each may write its own slices of dX and dY without locks; this is the single-device form of the
/// paper's ring, where device i holds text block (i + s) % D in step s. z is the calling thread's
/// [tb, tb] tile buffer. Calls for one row tile run in order of s, so sums per row tile are reproducible.
/// `work` (multiply-adds in all) decides whether threads pay off: a round ends in a barrier, which costs
/// a scheduler time slice whenever another process holds the core.
template <typename T, typename F>
void for_each_tile_pair(Device device, int64_t nt, int64_t tb, double work, F&& f) {
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  auto capture = [&] {
#pragma omp critical(siglite_loss_error)
    if (!error) error = std::current_exception();
    failed = true;
  };
#pragma omp parallel if (device.is_cpu() && nt > 1 && work >= kParallelWork)
  {
    Tensor<T> z;
    try {
      z = Tensor<T>::empty({tb, tb}, device);
    } catch (...) {
      capture();
    }
    for (int64_t s = 0; s < nt; ++s) {
#pragma omp for schedule(static)
      for (int64_t i = 0; i < nt; ++i) {
        if (failed) continue;  // exceptions may not leave an OpenMP region: finish the rounds, then rethrow
        try {
          f(i, (i + s) % nt, z.data());
        } catch (...) {
          capture();
        }
      }
    }
  }
  if (error) std::rethrow_exception(error);
}

/// z[0:r, 0:c] (leading dimension ldz) = alpha * x[i0:i0+r] @ y[j0:j0+c]^T, read in place from the
/// [n, d] row-major embeddings.
template <typename T>
void tile_similarities(Device device, const T* x, const T* y, int64_t d, int64_t i0, int64_t r, int64_t j0,
                       int64_t c, T alpha, T* z, int64_t ldz) {
  kernels::gemm(device, kernels::single_gemm<T>(false, true, r, c, d, d, d, ldz, alpha), x + i0 * d, y + j0 * d, z);
}

/// out[0:m, :] (an [m, d] block, leading dimension d) += alpha * op(a) @ b, op(a) = a or a^T of the tile
/// buffer (leading dimension lda), b a [k, d] block of an embedding.
template <typename T>
void tile_accumulate(Device device, bool trans_a, int64_t m, int64_t k, int64_t d, T alpha, const T* a, int64_t lda,
                     const T* b, T* out) {
  kernels::gemm(device, kernels::single_gemm<T>(trans_a, false, m, d, k, lda, d, d, alpha, T(1)), a, b, out);
}

/// The fused version: one node, tiles of [tile, tile] logits computed in forward, recomputed in backward.
/// Memory beyond inputs and gradients: one tile buffer per thread and a few doubles per row tile.
template <typename T>
Tensor<T> sigmoid_loss_tiled(const Tensor<T>& img, const Tensor<T>& txt, const Tensor<T>& t_prime,
                             const Tensor<T>& bias, int64_t tile) {
  const Device device = img.device();
  const int64_t n = img.shape()[0], d = img.shape()[1];
  const int64_t tb = std::min(tile, n), nt = (n + tb - 1) / tb;
  const Tensor<T> xs = img.detach().contiguous(), ys = txt.detach().contiguous();
  const T t = std::exp(t_prime.to(Device::cpu()).item()), b = bias.to(Device::cpu()).item();
  std::vector<double> row_loss(static_cast<size_t>(nt), 0.0);
  const double work = static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(d + 1);
  for_each_tile_pair<T>(device, nt, tb, work, [&](int64_t i, int64_t j, T* z) {
    const int64_t i0 = i * tb, j0 = j * tb, r = std::min(tb, n - i0), c = std::min(tb, n - j0);
    tile_similarities(device, xs.data(), ys.data(), d, i0, r, j0, c, t, z, tb);
    row_loss[static_cast<size_t>(i)] += kernels::sigmoid_loss_tile(device, z, r, c, tb, i0 - j0, b);
  });
  double total = 0;
  for (double v : row_loss) total += v;
  const Tensor<T> out = Tensor<T>::scalar(static_cast<T>(total / static_cast<double>(n)), device);

  // Per tile, with G = (sigmoid(Z) - I) * g / n: dX_i += t G Y_j, dY_j += t G^T X_i, db += sum(G),
  // dt' += sum(G .* t X_i Y_j^T).
  return record("sigmoid_loss", out, {img, txt, t_prime, bias},
                [xs, ys, t, b, n, d, tb, nt, work](const Tensor<T>& g, const std::vector<bool>& need) {
                  const Device dev = xs.device();
                  const T scale = g.to(Device::cpu()).item() / static_cast<T>(n);
                  Tensor<T> dx = need[0] ? Tensor<T>::zeros({n, d}, dev) : Tensor<T>();
                  Tensor<T> dy = need[1] ? Tensor<T>::zeros({n, d}, dev) : Tensor<T>();
                  std::vector<double> sum_g(static_cast<size_t>(nt), 0.0), sum_gz(static_cast<size_t>(nt), 0.0);
                  for_each_tile_pair<T>(dev, nt, tb, 3 * work, [&](int64_t i, int64_t j, T* z) {
                    const int64_t i0 = i * tb, j0 = j * tb, r = std::min(tb, n - i0), c = std::min(tb, n - j0);
                    const auto k = static_cast<size_t>(i);
                    tile_similarities(dev, xs.data(), ys.data(), d, i0, r, j0, c, t, z, tb);
                    kernels::sigmoid_loss_tile_backward(dev, z, r, c, tb, i0 - j0, b, scale, &sum_g[k], &sum_gz[k]);
                    if (dx.defined())
                      tile_accumulate(dev, false, r, c, d, t, z, tb, ys.data() + j0 * d, dx.data() + i0 * d);
                    if (dy.defined())
                      tile_accumulate(dev, true, c, r, d, t, z, tb, xs.data() + i0 * d, dy.data() + j0 * d);
                  });
                  double g_bias = 0, g_tprime = 0;
                  for (size_t k = 0; k < sum_g.size(); ++k) {
                    g_bias += sum_g[k];
                    g_tprime += sum_gz[k];
                  }
                  return std::vector<Tensor<T>>{dx, dy, Tensor<T>::full({1}, static_cast<T>(g_tprime), dev),
                                                Tensor<T>::full({1}, static_cast<T>(g_bias), dev)};
                });
}

}  // namespace detail

/// The SigLIP sigmoid loss of a batch of n matching (image, text) pairs, a scalar.
///   img_emb, txt_emb  [n, d], ALREADY L2-normalised (the model normalises; this function does not)
///   t_prime           [1], the log temperature: t = exp(t'), SigLIP initialises t' = log(10)
///   bias              [1], b, SigLIP initialises b = -10
/// Returns -sum over all n*n pairs of log_sigmoid(label * (t * x_i . y_j + b)) / n, label +1 for i == j
/// and -1 otherwise, with gradients into all four inputs. Tiled (the default) never stores the n x n
/// logits: memory O(n*d + threads*tile^2), `tile` being the edge of a square tile of logits; Naive
/// materialises them and is the readable reference. docs/loss.md explains both.
template <typename T>
Tensor<T> sigmoid_loss(const Tensor<T>& img_emb, const Tensor<T>& txt_emb, const Tensor<T>& t_prime,
                       const Tensor<T>& bias, SigmoidImpl impl = SigmoidImpl::Tiled, int64_t tile = 256) {
  const char* op = "sigmoid_loss";
  detail::check_embeddings(op, img_emb, txt_emb);
  detail::check_scalar_param(op, "t_prime", t_prime, img_emb.device());
  detail::check_scalar_param(op, "bias", bias, img_emb.device());
  SIGLITE_CHECK(tile > 0, op, ": tile size ", tile, " is not positive");
  return impl == SigmoidImpl::Naive ? detail::sigmoid_loss_naive(img_emb, txt_emb, t_prime, bias)
                                    : detail::sigmoid_loss_tiled(img_emb, txt_emb, t_prime, bias, tile);
}

}  // namespace siglite::loss
