// CPU kernels of the network layers: softmax, layer norm, gather/scatter-add, patch extraction.
#pragma once
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "siglite/backends/kernels.hpp"
#include "siglite/backends/cpu/parallel.hpp"

namespace siglite::cpu {

template <typename T>
void softmax(const T* x, T* y, int64_t rows, int64_t cols, bool log) {
  parallel_for(rows, cols * 4, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T* xr = x + r * cols;
      T* yr = y + r * cols;
      constexpr T kNegInf = -std::numeric_limits<T>::infinity();
      T mx = kNegInf;
      for (int64_t c = 0; c < cols; ++c) mx = std::max(mx, xr[c]);
      if (mx == kNegInf) {  // a fully masked row: softmax zeros, log-softmax log(0)
        std::fill_n(yr, cols, log ? kNegInf : T(0));
        continue;
      }
      T sum = 0;
      for (int64_t c = 0; c < cols; ++c) {
        const T ev = std::exp(xr[c] - mx);
        sum += ev;
        if (!log) yr[c] = ev;
      }
      if (log) {
        // (x - max) - log(sum), never x - (max + log(sum)): the rounded sum max + log(sum) would
        // cost outputs near 0 an ulp of max, 1e-3 in float at |x| = 1e4.
        const T log_sum = std::log(sum);
        for (int64_t c = 0; c < cols; ++c) yr[c] = (xr[c] - mx) - log_sum;
      } else {
        const T inv = T(1) / sum;
        for (int64_t c = 0; c < cols; ++c) yr[c] *= inv;
      }
    }
  });
}

template <typename T>
void softmax_backward(const T* y, const T* gy, T* gx, int64_t rows, int64_t cols, bool log) {
  parallel_for(rows, cols * 3, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T* yr = y + r * cols;
      const T* gr = gy + r * cols;
      T* out = gx + r * cols;
      T dot = 0;
      if (log) {
        if (cols > 0 && *std::max_element(yr, yr + cols) == -std::numeric_limits<T>::infinity()) {
          std::fill_n(out, cols, T(0));  // a fully masked row passes no gradient
          continue;
        }
        for (int64_t c = 0; c < cols; ++c) dot += gr[c];
        for (int64_t c = 0; c < cols; ++c) out[c] = gr[c] - std::exp(yr[c]) * dot;
      } else {
        for (int64_t c = 0; c < cols; ++c) dot += gr[c] * yr[c];
        for (int64_t c = 0; c < cols; ++c) out[c] = yr[c] * (gr[c] - dot);
      }
    }
  });
}

template <typename T>
void layer_norm(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, int64_t rows, int64_t cols, T eps) {
  using Row = Eigen::Array<T, 1, Eigen::Dynamic>;
  parallel_for(rows, cols * 3, [&](int64_t s, int64_t e) {
    Row h(cols);
    for (int64_t r = s; r < e; ++r) {
      const Eigen::Map<const Row> xr(x + r * cols, cols);
      const T m = xr.mean();
      h = xr - m;
      const T rs = T(1) / std::sqrt(h.square().mean() + eps);
      mean[r] = m;
      rstd[r] = rs;
      Eigen::Map<Row> yr(y + r * cols, cols);
      if (w && b) yr = h * rs * Eigen::Map<const Row>(w, cols) + Eigen::Map<const Row>(b, cols);
      else if (w) yr = h * rs * Eigen::Map<const Row>(w, cols);
      else if (b) yr = h * rs + Eigen::Map<const Row>(b, cols);
      else yr = h * rs;
    }
  });
}

template <typename T>
void layer_norm_backward(const T* x, const T* w, const T* mean, const T* rstd, const T* gy, T* gx, T* gw, T* gb,
                         int64_t rows, int64_t cols) {
  using Row = Eigen::Array<T, 1, Eigen::Dynamic>;
  const int nt = max_threads();
  std::vector<Row> pw(static_cast<size_t>(nt), Row::Zero(cols)), pb(static_cast<size_t>(nt), Row::Zero(cols));
  parallel_for(rows, cols * 6, [&](int64_t s, int64_t e) {
    Row& acc_w = pw[static_cast<size_t>(thread_id())];
    Row& acc_b = pb[static_cast<size_t>(thread_id())];
    Row h(cols), d(cols);
    for (int64_t r = s; r < e; ++r) {
      const Eigen::Map<const Row> gr(gy + r * cols, cols);
      h = (Eigen::Map<const Row>(x + r * cols, cols) - mean[r]) * rstd[r];
      if (w) d = gr * Eigen::Map<const Row>(w, cols);
      else d = gr;
      const T mean_d = d.mean(), mean_dh = (d * h).mean();
      Eigen::Map<Row>(gx + r * cols, cols) = rstd[r] * (d - mean_d - h * mean_dh);
      acc_w += gr * h;
      acc_b += gr;
    }
  });
  for (int t = 1; t < nt; ++t) {
    pw[0] += pw[static_cast<size_t>(t)];
    pb[0] += pb[static_cast<size_t>(t)];
  }
  if (gw) Eigen::Map<Row>(gw, cols) = pw[0];
  if (gb) Eigen::Map<Row>(gb, cols) = pb[0];
}

template <typename T>
void gather(const char* op, const T* x, const int64_t* idx, T* out, int64_t outer, int64_t n_src, int64_t n_idx,
            int64_t inner) {
  for (int64_t i = 0; i < n_idx; ++i)
    SIGLITE_CHECK(idx[i] >= 0 && idx[i] < n_src, op, ": index ", idx[i], " at position ", i,
                  " is out of range [0, ", n_src, ")");
  parallel_for(outer * n_idx, inner, [&](int64_t b, int64_t e) {
    for (int64_t j = b; j < e; ++j) {
      const int64_t o = j / n_idx, i = j % n_idx;
      std::copy_n(x + (o * n_src + idx[i]) * inner, inner, out + j * inner);
    }
  });
}

template <typename T>
void scatter_add(const T* g, const int64_t* idx, T* gx, int64_t outer, int64_t n_src, int64_t n_idx, int64_t inner) {
  // Parallel over the outer and inner extents only: two indices may name the same source row.
  parallel_for(outer, n_idx * inner, [&](int64_t b, int64_t e) {
    for (int64_t o = b; o < e; ++o)
      for (int64_t i = 0; i < n_idx; ++i) {
        const T* src = g + (o * n_idx + i) * inner;
        T* dst = gx + (o * n_src + idx[i]) * inner;
        for (int64_t c = 0; c < inner; ++c) dst[c] += src[c];
      }
  });
}

template <typename T>
void patchify(T* images, T* patches, int64_t n, int64_t c, int64_t h, int64_t w, int64_t p, bool to_images) {
  const int64_t gh = h / p, gw = w / p, patch = c * p * p;
  parallel_for(n * gh, gw * patch, [&](int64_t b, int64_t e) {
    for (int64_t ni = b; ni < e; ++ni) {
      const int64_t img = ni / gh, py = ni % gh;
      for (int64_t px = 0; px < gw; ++px) {
        T* row = patches + ((img * gh + py) * gw + px) * patch;
        for (int64_t ch = 0; ch < c; ++ch)
          for (int64_t ky = 0; ky < p; ++ky) {
            T* dst = row + (ch * p + ky) * p;
            T* pix = images + ((img * c + ch) * h + py * p + ky) * w + px * p;
            if (to_images) std::copy_n(dst, p, pix);
            else std::copy_n(pix, p, dst);
          }
      }
    }
  });
}

}  // namespace siglite::cpu
