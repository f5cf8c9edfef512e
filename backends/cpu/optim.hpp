// CPU optimizer updates: one fused pass over a parameter's contiguous buffers, in place, allocating
// nothing. The arithmetic follows torch.optim's single-tensor code op by op (in T, with the scalars
// rounded to T), so trajectories match PyTorch's to a few ulps.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "siglite/backends/kernels.hpp"
#include "siglite/backends/cpu/elementwise.hpp"
#include "siglite/backends/cpu/parallel.hpp"

namespace siglite::cpu {

using kernels::AdamWArgs;
using kernels::LionArgs;
using kernels::SgdArgs;

template <typename T>
void adamw_update(T* p, const T* g, T* m, T* v, int64_t n, const AdamWArgs& a) {
  const T decay = static_cast<T>(1.0 - a.lr * a.weight_decay);
  const T b1 = static_cast<T>(a.beta1), c1 = static_cast<T>(1.0 - a.beta1);
  const T b2 = static_cast<T>(a.beta2), c2 = static_cast<T>(1.0 - a.beta2);
  const T bc2_sqrt = static_cast<T>(std::sqrt(a.bias_correction2)), eps = static_cast<T>(a.eps);
  const T step_size = static_cast<T>(a.lr / a.bias_correction1);
  parallel_for(n, 8, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const T gi = g[i];
      const T mi = m[i] * b1 + gi * c1;
      const T vi = v[i] * b2 + gi * gi * c2;
      m[i] = mi;
      v[i] = vi;
      p[i] = p[i] * decay - step_size * (mi / (std::sqrt(vi) / bc2_sqrt + eps));
    }
  });
}

template <typename T>
void sgd_update(T* p, const T* g, T* buf, int64_t n, const SgdArgs& a) {
  const T lr = static_cast<T>(a.lr), wd = static_cast<T>(a.weight_decay);
  const T mom = static_cast<T>(a.momentum), keep = static_cast<T>(1.0 - a.dampening);
  const bool use_wd = a.weight_decay != 0, use_mom = a.momentum != 0;
  parallel_for(n, 4, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      T d = use_wd ? g[i] + p[i] * wd : g[i];
      if (use_mom) {
        // torch starts the buffer at the first gradient itself, undamped.
        const T b = a.first_step ? d : buf[i] * mom + d * keep;
        buf[i] = b;
        d = a.nesterov ? d + b * mom : b;
      }
      p[i] = p[i] - lr * d;
    }
  });
}

template <typename T>
void lion_update(T* p, const T* g, T* m, int64_t n, const LionArgs& a) {
  const T decay = static_cast<T>(1.0 - a.lr * a.weight_decay), lr = static_cast<T>(a.lr);
  const T b1 = static_cast<T>(a.beta1), c1 = static_cast<T>(1.0 - a.beta1);
  const T b2 = static_cast<T>(a.beta2), c2 = static_cast<T>(1.0 - a.beta2);
  parallel_for(n, 6, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const T c = m[i] * b1 + g[i] * c1;
      // sign(c) that keeps 0 at 0 and lets a NaN through instead of hiding it.
      const T u = c > T(0) ? T(1) : (c < T(0) ? T(-1) : c);
      p[i] = p[i] * decay - lr * u;
      m[i] = m[i] * b2 + g[i] * c2;
    }
  });
}

/// Sum of x[i]^2 in double. Fixed blocks summed in a fixed order: the same result for any number
/// of threads, so clipping is reproducible.
template <typename T>
double sum_squares(const T* x, int64_t n) {
  constexpr int64_t kMaxBlocks = 64;
  const int64_t blocks = std::min<int64_t>(kMaxBlocks, std::max<int64_t>(1, n / kParallelGrain));
  const int64_t len = (n + blocks - 1) / blocks;
  double partial[kMaxBlocks] = {};
  parallel_for(blocks, len, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      double s = 0;
      for (int64_t i = b * len, e = std::min(n, i + len); i < e; ++i) s += static_cast<double>(x[i]) * x[i];
      partial[b] = s;
    }
  });
  double total = 0;
  for (int64_t b = 0; b < blocks; ++b) total += partial[b];
  return total;
}

template <typename T>
void global_norm(const std::vector<kernels::Span<const T>>& xs, double* norm) {
  double total = 0;
  for (const auto& x : xs) total += sum_squares(x.data, x.n);
  norm[0] = std::sqrt(total);
}

template <typename T>
void clip_by_norm(const std::vector<kernels::Span<T>>& xs, const double* norm, double max_norm) {
  if (!std::isfinite(norm[0])) return;
  const double coef = max_norm / (norm[0] + 1e-6);
  if (coef >= 1) return;
  for (const auto& x : xs) unary(kernels::Unary::MulScalar, x.data, x.data, x.n, static_cast<T>(coef));
}

}  // namespace siglite::cpu
