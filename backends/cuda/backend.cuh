// The CUDA backend: the kernel set of backends/kernels.hpp on NVIDIA GPUs, each kernel the function of the same
// name in this folder, and the caching device allocator. backends/cuda.cuh registers it; compile it with nvcc (the
// siglite::cuda CMake target does, in the consumer's build).
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "siglite/backends/backend.hpp"
#include "siglite/backends/cuda/allocator.cuh"
#include "siglite/backends/cuda/attention.cuh"
#include "siglite/backends/cuda/elementwise.cuh"
#include "siglite/backends/cuda/gemm.cuh"
#include "siglite/backends/cuda/linear.cuh"
#include "siglite/backends/cuda/loss.cuh"
#include "siglite/backends/cuda/nn.cuh"
#include "siglite/backends/cuda/optim.cuh"
#include "siglite/backends/cuda/reduce.cuh"

namespace siglite::cuda {

using kernels::AdamWArgs;
using kernels::AttentionArgs;
using kernels::Binary;
using kernels::GemmArgs;
using kernels::LionArgs;
using kernels::Reduce;
using kernels::SgdArgs;
using kernels::View;

/// copy, fill and arange on the current CUDA device, over Base: kernels::MemoryKernels<T> or kernels::Kernels<T>.
template <typename T, typename Base = kernels::MemoryKernels<T>>
class MemoryKernels : public Base {
 public:
  void copy(const View<const T>& src, const View<T>& dst) const override { cuda::copy(src, dst); }
  void fill(T* dst, int64_t n, T value) const override { cuda::fill(dst, n, value); }
  void arange(T* dst, int64_t n, T start, T step) const override { cuda::arange(dst, n, start, step); }
};

template <typename T>
class Kernels : public MemoryKernels<T, kernels::Kernels<T>> {
 public:
  using Unary = kernels::Unary;
  template <typename U>
  using Span = kernels::Span<U>;

  void binary(Binary op, const View<const T>& a, const View<const T>& b, T* out) const override {
    cuda::binary(op, a, b, out);
  }
  void unary(Unary op, const T* x, T* y, int64_t n, T param) const override { cuda::unary(op, x, y, n, param); }
  void convert(const View<const int64_t>& src, T* dst) const override { cuda::convert(src, dst); }
  void convert(const View<const float>& src, T* dst) const override { cuda::convert(src, dst); }
  void convert(const View<const double>& src, T* dst) const override { cuda::convert(src, dst); }
  void random(kernels::Random dist, T* out, int64_t n, uint64_t key, T p, T q) const override {
    cuda::random(dist, out, n, key, p, q);
  }
  void unary_backward(Unary op, const T* x, const T* y, const T* gy, T* gx, int64_t n, T param) const override {
    cuda::unary_backward(op, x, y, gy, gx, n, param);
  }
  void reduce(Reduce op, const View<const T>& x, size_t kept, T* out) const override { cuda::reduce(op, x, kept, out); }
  void topk(const View<const T>& x, int64_t k, int64_t* indices) const override { cuda::topk(x, k, indices); }
  void gemm(const GemmArgs<T>& g, const T* a, const T* b, T* c) const override { cuda::gemm(g, a, b, c); }
  void linear_forward(const T* x, const T* w, const T* bias, T* y, std::optional<Unary> act, T* a, int64_t rows,
                      int64_t in, int64_t out, const std::shared_ptr<const void>& owner) const override {
    cuda::linear_forward(x, w, bias, y, act, a, rows, in, out, owner);
  }
  void linear_backward(const T* x, const T* w, const T* y, const T* a, std::optional<Unary> act, const T* ga, T* gy,
                       T* gx, T* gw, T* gb, int64_t rows, int64_t in, int64_t out) const override {
    cuda::linear_backward(x, w, y, a, act, ga, gy, gx, gw, gb, rows, in, out);
  }
  void softmax(const T* x, T* y, int64_t rows, int64_t cols, bool log) const override {
    cuda::softmax(x, y, rows, cols, log);
  }
  void softmax_backward(const T* y, const T* gy, T* gx, int64_t rows, int64_t cols, bool log) const override {
    cuda::softmax_backward(y, gy, gx, rows, cols, log);
  }
  void layer_norm(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, int64_t rows, int64_t cols,
                  T eps) const override {
    cuda::layer_norm(x, w, b, y, mean, rstd, rows, cols, eps);
  }
  void layer_norm_backward(const T* x, const T* w, const T* mean, const T* rstd, const T* gy, T* gx, T* gw, T* gb,
                           int64_t rows, int64_t cols) const override {
    cuda::layer_norm_backward(x, w, mean, rstd, gy, gx, gw, gb, rows, cols);
  }
  void attention_forward(const AttentionArgs<T>& a, const T* q, const T* k, const T* v, T* p,
                         T* out) const override {
    cuda::attention_forward(a, q, k, v, p, out);
  }
  void attention_backward(const AttentionArgs<T>& a, const T* q, const T* k, const T* v, const T* p, const T* gout,
                          T* gq, T* gk, T* gv) const override {
    cuda::attention_backward(a, q, k, v, p, gout, gq, gk, gv);
  }
  void gather(const char* op, const T* x, const int64_t* idx, T* out, int64_t outer, int64_t n_src, int64_t n_idx,
              int64_t inner) const override {
    cuda::gather(op, x, idx, out, outer, n_src, n_idx, inner);
  }
  void scatter_add(const T* g, const int64_t* idx, T* gx, int64_t outer, int64_t n_src, int64_t n_idx,
                   int64_t inner) const override {
    cuda::scatter_add(g, idx, gx, outer, n_src, n_idx, inner);
  }
  void patchify(T* images, T* patches, int64_t n, int64_t c, int64_t h, int64_t w, int64_t p,
                bool to_images) const override {
    cuda::patchify(images, patches, n, c, h, w, p, to_images);
  }
  void sigmoid_loss_forward(const kernels::SigmoidLossArgs& a, const T* x, const T* y, const T* t_prime,
                            const T* bias, T* loss) const override {
    cuda::sigmoid_loss_forward(a, x, y, t_prime, bias, loss);
  }
  void sigmoid_loss_backward(const kernels::SigmoidLossArgs& a, const T* x, const T* y, const T* t_prime,
                             const T* bias, const T* g, T* dx, T* dy, T* dt_prime, T* dbias) const override {
    cuda::sigmoid_loss_backward(a, x, y, t_prime, bias, g, dx, dy, dt_prime, dbias);
  }
  void adamw_update(T* p, const T* g, T* m, T* v, int64_t n, const AdamWArgs& a) const override {
    cuda::adamw_update(p, g, m, v, n, a);
  }
  void sgd_update(T* p, const T* g, T* buf, int64_t n, const SgdArgs& a) const override {
    cuda::sgd_update(p, g, buf, n, a);
  }
  void lion_update(T* p, const T* g, T* m, int64_t n, const LionArgs& a) const override {
    cuda::lion_update(p, g, m, n, a);
  }
  void global_norm(const std::vector<Span<const T>>& xs, double* norm) const override { cuda::global_norm(xs, norm); }
  void clip_by_norm(const std::vector<Span<T>>& xs, const double* norm, double max_norm) const override {
    cuda::clip_by_norm(xs, norm, max_norm);
  }
};

class Backend : public BackendOf<Kernels, MemoryKernels> {
 public:
  std::string name() const override { return "cuda"; }
  int device_count() const override { return cuda::device_count(); }
  Allocator& allocator(int index) override { return allocator_of(index); }
};

/// The process's CUDA backend (never destroyed: storages may outlive statics).
inline Backend& backend() {
  static Backend* b = new Backend();
  return *b;
}

}  // namespace siglite::cuda
