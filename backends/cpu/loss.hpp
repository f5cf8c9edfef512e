// CPU kernels of the tiled sigmoid loss: the elementwise work on one tile of the logits. The GEMMs
// that fill a tile and consume its gradient are ordinary gemm calls made by the op.
//
// Each row of a tile is one Eigen array expression, so exp and log1p run on SIMD registers; a row's
// sum is taken in T, and the row sums are added in double (a 16384^2 loss has 2^28 terms).
#pragma once
#include <Eigen/Core>
#include <cstdint>

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

}  // namespace siglite::cpu
