// CPU kernels of the network layers: softmax, layer norm, gather/scatter-add, patch extraction.
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "backends/cpu/parallel.hpp"

namespace siglite::cpu {

template <typename T>
void softmax(const T* x, T* y, int64_t rows, int64_t cols, bool log) {
  parallel_for(rows, cols * 4, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      const T* xr = x + r * cols;
      T* yr = y + r * cols;
      T mx = -std::numeric_limits<T>::infinity();
      for (int64_t c = 0; c < cols; ++c) mx = std::max(mx, xr[c]);
      if (mx == -std::numeric_limits<T>::infinity()) mx = 0;  // a fully masked row stays finite
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
  parallel_for(rows, cols * 3, [&](int64_t s, int64_t e) {
    for (int64_t r = s; r < e; ++r) {
      const T* xr = x + r * cols;
      T* yr = y + r * cols;
      T m = 0;
      for (int64_t c = 0; c < cols; ++c) m += xr[c];
      m /= T(cols);
      T v = 0;
      for (int64_t c = 0; c < cols; ++c) v += (xr[c] - m) * (xr[c] - m);
      const T rs = T(1) / std::sqrt(v / T(cols) + eps);
      mean[r] = m;
      rstd[r] = rs;
      for (int64_t c = 0; c < cols; ++c) {
        const T h = (xr[c] - m) * rs;
        yr[c] = (w ? h * w[c] : h) + (b ? b[c] : T(0));
      }
    }
  });
}

template <typename T>
void layer_norm_backward(const T* x, const T* w, const T* mean, const T* rstd, const T* gy, T* gx, T* gw, T* gb,
                         int64_t rows, int64_t cols) {
  const int nt = max_threads();
  std::vector<T> partial(static_cast<size_t>(2 * nt * cols), T(0));  // per-thread sums for gw, gb
  parallel_for(rows, cols * 6, [&](int64_t s, int64_t e) {
    T* pw = partial.data() + 2 * thread_id() * cols;
    T* pb = pw + cols;
    for (int64_t r = s; r < e; ++r) {
      const T* xr = x + r * cols;
      const T* gr = gy + r * cols;
      const T m = mean[r], rs = rstd[r];
      T sum_d = 0, sum_dh = 0;
      for (int64_t c = 0; c < cols; ++c) {
        const T h = (xr[c] - m) * rs;
        const T d = gr[c] * (w ? w[c] : T(1));
        sum_d += d;
        sum_dh += d * h;
        pw[c] += gr[c] * h;
        pb[c] += gr[c];
      }
      sum_d /= T(cols);
      sum_dh /= T(cols);
      T* out = gx + r * cols;
      for (int64_t c = 0; c < cols; ++c) {
        const T h = (xr[c] - m) * rs;
        const T d = gr[c] * (w ? w[c] : T(1));
        out[c] = rs * (d - sum_d - h * sum_dh);
      }
    }
  });
  for (int64_t c = 0; c < cols; ++c) {
    T sw = 0, sb = 0;
    for (int t = 0; t < nt; ++t) {
      sw += partial[static_cast<size_t>(2 * t * cols + c)];
      sb += partial[static_cast<size_t>((2 * t + 1) * cols + c)];
    }
    if (gw) gw[c] = sw;
    if (gb) gb[c] = sb;
  }
}

template <typename T>
void gather(const T* x, const int64_t* idx, T* out, int64_t outer, int64_t n_src, int64_t n_idx, int64_t inner) {
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
