// CPU kernels of the tiled sigmoid loss: the schedule of tiles over the threads, the GEMMs that fill a
// tile of logits and consume its gradient, and the elementwise work on one tile.
//
// Each row of a tile is one Eigen array expression, so exp and log1p run on SIMD registers; a row's
// sum is taken in T, and the row sums are added in double (a 16384^2 loss has 2^28 terms).
#pragma once
#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <exception>
#include <optional>
#include <vector>

#include "siglite/backends/kernels.hpp"
#include "siglite/backends/cpu/allocator.hpp"
#include "siglite/backends/cpu/gemm.hpp"
#include "siglite/backends/cpu/parallel.hpp"

namespace siglite::cpu {

/// Sum over the tile of -log_sigmoid(label * (z + bias)); z [rows, cols] with leading dimension ld,
/// label +1 where c == r + diag, else -1.
/// -log_sigmoid(-x) = softplus(x) = max(x, 0) + log1p(exp(-|x|)), finite for every finite x; the positive
/// pair's term is softplus(-x) = softplus(x) - x, so a row is sum(softplus) less its positive logit.
template <typename T>
double sigmoid_loss_tile(const T* z, int64_t rows, int64_t cols, int64_t ld, int64_t diag, T bias) {
  using Row = Eigen::Map<const Eigen::Array<T, Eigen::Dynamic, 1>>;
  double total = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const Row zr(z + r * ld, cols);
    const auto logit = zr + bias;
    total += static_cast<double>((logit.max(T(0)) + (-logit.abs()).exp().log1p()).sum());
    const int64_t c = r + diag;
    if (c >= 0 && c < cols) total -= static_cast<double>(z[r * ld + c] + bias);
  }
  return total;
}

/// Overwrites z with G = (sigmoid(z + bias) - [c == r + diag]) * scale and adds sum(G) to *sum_g and
/// sum(G .* z) (z as it was on entry) to *sum_gz. sigmoid(x) = 1 / (1 + exp(-x)) is within 2e-7 (relative)
/// of the exact value from -30 to 10; Eigen's own float logistic() is up to 5e-4 off near -9, where SigLIP's
/// negatives sit.
template <typename T>
void sigmoid_loss_tile_backward(T* z, int64_t rows, int64_t cols, int64_t ld, int64_t diag, T bias, T scale,
                                double* sum_g, double* sum_gz) {
  using Array = Eigen::Array<T, Eigen::Dynamic, 1>;
  Array g(cols);
  double sg = 0, sgz = 0;
  for (int64_t r = 0; r < rows; ++r) {
    Eigen::Map<Array> zr(z + r * ld, cols);
    g = scale / (T(1) + (-(zr + bias)).exp());
    const int64_t c = r + diag;
    if (c >= 0 && c < cols) g(c) -= scale;
    sg += static_cast<double>(g.sum());
    sgz += static_cast<double>((g * zr).sum());
    zr = g;
  }
  *sum_g += sg;
  *sum_gz += sgz;
}

namespace detail {

/// Below this many multiply-adds (about 5 ms on one core) the tiled loss runs on one thread.
constexpr double kLossParallelWork = 1 << 24;

/// Calls f(i, j, z) once for every pair of row tile i < nti and column tile j < ntj, in k = max(nti, ntj) rounds:
/// in round s row tile i meets column tile (i + s) % k. Within a round no two calls share a row tile or a column
/// tile, so each may write its own slices of dX and dY without locks; this is the single-device form of the
/// paper's ring, where device i holds text block (i + s) % D in step s. z is the calling thread's [tb, tb] tile
/// buffer. Calls for one row tile run in order of s, so sums per row tile are reproducible. `work` (multiply-adds
/// in all) decides whether threads pay off: a round ends in a barrier, which costs a scheduler time slice whenever
/// another process holds the core.
template <typename T, typename F>
void for_each_tile_pair(int64_t nti, int64_t ntj, int64_t tb, double work, F&& f) {
  const int64_t k = std::max(nti, ntj);
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  auto capture = [&] {
#pragma omp critical(siglite_loss_error)
    if (!error) error = std::current_exception();
    failed = true;
  };
#pragma omp parallel if (k > 1 && work >= kLossParallelWork)
  {
    std::optional<ScratchBuffer> z;
    try {
      z.emplace(static_cast<size_t>(tb * tb) * sizeof(T));
    } catch (...) {
      capture();
    }
    for (int64_t s = 0; s < k; ++s) {
#pragma omp for schedule(static)
      for (int64_t i = 0; i < nti; ++i) {
        const int64_t j = (i + s) % k;
        if (failed || j >= ntj) continue;  // exceptions may not leave an OpenMP region: finish, then rethrow
        try {
          f(i, j, static_cast<T*>(z->data));
        } catch (...) {
          capture();
        }
      }
    }
  }
  if (error) std::rethrow_exception(error);
}

/// The square tiles of a block of n x m logits: edge tb, nti row tiles and ntj column tiles.
struct Tiling {
  int64_t tb, nti, ntj;
  explicit Tiling(const kernels::SigmoidLossArgs& a)
      : tb(std::max<int64_t>(1, std::min(a.tile, std::max(a.n, a.m)))), nti((a.n + tb - 1) / tb),
        ntj((a.m + tb - 1) / tb) {}
};

}  // namespace detail

/// loss[0] = -sum_ij log_sigmoid(label_ij (exp(t'[0]) x_i . y_j + b[0])) / divisor, `a.tile` x `a.tile` logits at a
/// time: z = t X_i Y_j^T (a GEMM), then the tile's sum; row tiles' sums added in double in a fixed order.
template <typename T>
void sigmoid_loss_forward(const kernels::SigmoidLossArgs& a, const T* x, const T* y, const T* t_prime,
                          const T* bias, T* loss) {
  const int64_t n = a.n, m = a.m, d = a.d;
  const detail::Tiling tl(a);
  const int64_t tb = tl.tb;
  const T t = std::exp(t_prime[0]), b = bias[0];
  std::vector<double> row_loss(static_cast<size_t>(tl.nti), 0.0);
  const double work = static_cast<double>(n) * static_cast<double>(m) * static_cast<double>(d + 1);
  detail::for_each_tile_pair<T>(tl.nti, tl.ntj, tb, work, [&](int64_t i, int64_t j, T* z) {
    const int64_t i0 = i * tb, j0 = j * tb, r = std::min(tb, n - i0), c = std::min(tb, m - j0);
    gemm(kernels::single_gemm<T>(false, true, r, c, d, d, d, tb, t), x + i0 * d, y + j0 * d, z);
    row_loss[static_cast<size_t>(i)] += sigmoid_loss_tile(z, r, c, tb, kernels::sigmoid_loss_diagonal(a, i0, j0), b);
  });
  double total = 0;
  for (double v : row_loss) total += v;
  loss[0] = static_cast<T>(total / a.divisor);
}

/// Per tile, with G = (sigmoid(Z) - labels_positive) * g / divisor: dX_i += t G Y_j, dY_j += t G^T X_i,
/// db += sum(G), dt' += sum(G .* t X_i Y_j^T); the tiles' logits recomputed, never kept from forward.
template <typename T>
void sigmoid_loss_backward(const kernels::SigmoidLossArgs& a, const T* x, const T* y, const T* t_prime,
                           const T* bias, const T* g, T* dx, T* dy, T* dt_prime, T* dbias) {
  const int64_t n = a.n, m = a.m, d = a.d;
  const detail::Tiling tl(a);
  const int64_t tb = tl.tb;
  const T t = std::exp(t_prime[0]), b = bias[0], scale = static_cast<T>(static_cast<double>(g[0]) / a.divisor);
  if (dx) std::fill_n(dx, n * d, T(0));
  if (dy) std::fill_n(dy, m * d, T(0));
  std::vector<double> sum_g(static_cast<size_t>(tl.nti), 0.0), sum_gz(static_cast<size_t>(tl.nti), 0.0);
  const double work = 3 * static_cast<double>(n) * static_cast<double>(m) * static_cast<double>(d + 1);
  detail::for_each_tile_pair<T>(tl.nti, tl.ntj, tb, work, [&](int64_t i, int64_t j, T* z) {
    const int64_t i0 = i * tb, j0 = j * tb, r = std::min(tb, n - i0), c = std::min(tb, m - j0);
    const auto k = static_cast<size_t>(i);
    gemm(kernels::single_gemm<T>(false, true, r, c, d, d, d, tb, t), x + i0 * d, y + j0 * d, z);
    sigmoid_loss_tile_backward(z, r, c, tb, kernels::sigmoid_loss_diagonal(a, i0, j0), b, scale, &sum_g[k],
                               &sum_gz[k]);
    if (dx) gemm(kernels::single_gemm<T>(false, false, r, d, c, tb, d, d, t, T(1)), z, y + j0 * d, dx + i0 * d);
    if (dy) gemm(kernels::single_gemm<T>(true, false, c, d, r, tb, d, d, t, T(1)), z, x + i0 * d, dy + j0 * d);
  });
  double g_bias = 0, g_tprime = 0;
  for (size_t k = 0; k < sum_g.size(); ++k) {
    g_bias += sum_g[k];
    g_tprime += sum_gz[k];
  }
  dt_prime[0] = static_cast<T>(g_tprime);
  dbias[0] = static_cast<T>(g_bias);
}

}  // namespace siglite::cpu
