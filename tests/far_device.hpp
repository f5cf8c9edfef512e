// The far device: a test backend whose memory the host cannot dereference. Its allocator hands out host blocks
// moved by 2^55: on x86-64 with 4-level page tables such an address is not canonical, with 5-level ones it lies
// where the kernel maps nothing unasked, and on AArch64 bit 55 selects the kernel's half, so any host access to
// its memory faults at once; its kernels move every pointer back and run the CPU backend's kernels, so its results are the CPU's bit
// for bit. It counts the copies to the host: the synchronisations a GPU would make. Registered as
// DeviceType::PrivateUse under the name "far" by far_device(), for the test build only.
#pragma once
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <siglite/siglite.hpp>

namespace siglite::testing {

namespace far {

constexpr uintptr_t kShift = uintptr_t(1) << 55;

template <typename T>
T* near(T* p) {
  return p ? reinterpret_cast<T*>(reinterpret_cast<uintptr_t>(p) - kShift) : nullptr;
}
template <typename T>
kernels::View<T> near(const kernels::View<T>& v) {
  return {near(v.data), v.shape, v.strides};
}
template <typename T>
kernels::AttentionArgs<T> near(const kernels::AttentionArgs<T>& a) {
  kernels::AttentionArgs<T> n = a;
  n.mask = near(a.mask);
  return n;
}
template <typename T>
std::vector<kernels::Span<T>> near(const std::vector<kernels::Span<T>>& xs) {
  std::vector<kernels::Span<T>> out;
  for (const auto& x : xs) out.push_back({near(x.data), x.n});
  return out;
}

/// Blocks of the CPU's allocator, handed out moved; its statistics are the CPU allocator's.
class Allocator : public siglite::Allocator {
 public:
  void* allocate(size_t bytes) override {
    return reinterpret_cast<void*>(reinterpret_cast<uintptr_t>(host().allocate(bytes)) + kShift);
  }
  void deallocate(void* p, size_t bytes) override { host().deallocate(near(p), bytes); }
  void copy_from_host(void* dst, const void* src, size_t bytes) override { std::memcpy(near(dst), src, bytes); }
  void copy_to_host(void* dst, const void* src, size_t bytes) override {
    ++syncs_;
    std::memcpy(dst, near(src), bytes);
  }
  void copy_within(void* dst, const void* src, size_t bytes) override { std::memcpy(near(dst), near(src), bytes); }
  AllocatorStats stats() const override { return host().stats(); }
  void reset_peak() override { host().reset_peak(); }
  void empty_cache() override { host().empty_cache(); }

  /// Copies to the host so far: each one a wait for the device on a GPU.
  int64_t syncs() const { return syncs_; }

 private:
  static siglite::Allocator& host() { return backends::of(Device::cpu()).allocator(0); }
  std::atomic<int64_t> syncs_{0};
};

/// copy, fill and arange on the CPU's kernels, over Base: kernels::MemoryKernels<T> or kernels::Kernels<T>.
template <typename T, typename Base = kernels::MemoryKernels<T>>
class MemoryKernels : public Base {
 public:
  void copy(const kernels::View<const T>& src, const kernels::View<T>& dst) const override {
    cpu().copy(near(src), near(dst));
  }
  void fill(T* dst, int64_t n, T value) const override { cpu().fill(near(dst), n, value); }
  void arange(T* dst, int64_t n, T start, T step) const override { cpu().arange(near(dst), n, start, step); }

 private:
  static const kernels::MemoryKernels<T>& cpu() { return kernels::on<T>(Device::cpu()); }
};

template <typename T>
class Kernels : public MemoryKernels<T, kernels::Kernels<T>> {
 public:
  using Unary = kernels::Unary;
  template <typename U>
  using View = kernels::View<U>;
  template <typename U>
  using Span = kernels::Span<U>;

  void binary(kernels::Binary op, const View<const T>& a, const View<const T>& b, T* out) const override {
    cpu().binary(op, near(a), near(b), near(out));
  }
  void unary(Unary op, const T* x, T* y, int64_t n, T param) const override {
    cpu().unary(op, near(x), near(y), n, param);
  }
  void convert(const View<const int64_t>& src, T* dst) const override { cpu().convert(near(src), near(dst)); }
  void convert(const View<const float>& src, T* dst) const override { cpu().convert(near(src), near(dst)); }
  void convert(const View<const double>& src, T* dst) const override { cpu().convert(near(src), near(dst)); }
  void random(kernels::Random dist, T* out, int64_t n, uint64_t key, T p, T q) const override {
    cpu().random(dist, near(out), n, key, p, q);
  }
  void unary_backward(Unary op, const T* x, const T* y, const T* gy, T* gx, int64_t n, T param) const override {
    cpu().unary_backward(op, near(x), near(y), near(gy), near(gx), n, param);
  }
  void reduce(kernels::Reduce op, const View<const T>& x, size_t kept, T* out) const override {
    cpu().reduce(op, near(x), kept, near(out));
  }
  void topk(const View<const T>& x, int64_t k, int64_t* indices) const override {
    cpu().topk(near(x), k, near(indices));
  }
  void gemm(const kernels::GemmArgs<T>& g, const T* a, const T* b, T* c) const override {
    cpu().gemm(g, near(a), near(b), near(c));
  }
  void linear_forward(const T* x, const T* w, const T* bias, T* y, std::optional<Unary> act, T* a, int64_t rows,
                      int64_t in, int64_t out, const std::shared_ptr<const void>& owner) const override {
    cpu().linear_forward(near(x), near(w), near(bias), near(y), act, near(a), rows, in, out, owner);
  }
  void linear_backward(const T* x, const T* w, const T* y, const T* a, std::optional<Unary> act, const T* ga, T* gy,
                       T* gx, T* gw, T* gb, int64_t rows, int64_t in, int64_t out) const override {
    cpu().linear_backward(near(x), near(w), near(y), near(a), act, near(ga), near(gy), near(gx), near(gw), near(gb),
                          rows, in, out);
  }
  void softmax(const T* x, T* y, int64_t rows, int64_t cols, bool log) const override {
    cpu().softmax(near(x), near(y), rows, cols, log);
  }
  void softmax_backward(const T* y, const T* gy, T* gx, int64_t rows, int64_t cols, bool log) const override {
    cpu().softmax_backward(near(y), near(gy), near(gx), rows, cols, log);
  }
  void layer_norm(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, int64_t rows, int64_t cols,
                  T eps) const override {
    cpu().layer_norm(near(x), near(w), near(b), near(y), near(mean), near(rstd), rows, cols, eps);
  }
  void layer_norm_backward(const T* x, const T* w, const T* mean, const T* rstd, const T* gy, T* gx, T* gw, T* gb,
                           int64_t rows, int64_t cols) const override {
    cpu().layer_norm_backward(near(x), near(w), near(mean), near(rstd), near(gy), near(gx), near(gw), near(gb), rows,
                              cols);
  }
  void attention_forward(const kernels::AttentionArgs<T>& a, const T* q, const T* k, const T* v, T* p,
                         T* out) const override {
    cpu().attention_forward(near(a), near(q), near(k), near(v), near(p), near(out));
  }
  void attention_backward(const kernels::AttentionArgs<T>& a, const T* q, const T* k, const T* v, const T* p,
                          const T* gout, T* gq, T* gk, T* gv) const override {
    cpu().attention_backward(near(a), near(q), near(k), near(v), near(p), near(gout), near(gq), near(gk), near(gv));
  }
  void gather(const char* op, const T* x, const int64_t* idx, T* out, int64_t outer, int64_t n_src, int64_t n_idx,
              int64_t inner) const override {
    cpu().gather(op, near(x), near(idx), near(out), outer, n_src, n_idx, inner);
  }
  void scatter_add(const T* g, const int64_t* idx, T* gx, int64_t outer, int64_t n_src, int64_t n_idx,
                   int64_t inner) const override {
    cpu().scatter_add(near(g), near(idx), near(gx), outer, n_src, n_idx, inner);
  }
  void patchify(T* images, T* patches, int64_t n, int64_t c, int64_t h, int64_t w, int64_t p,
                bool to_images) const override {
    cpu().patchify(near(images), near(patches), n, c, h, w, p, to_images);
  }
  void sigmoid_loss_forward(const kernels::SigmoidLossArgs& a, const T* x, const T* y, const T* t_prime,
                            const T* bias, T* loss) const override {
    cpu().sigmoid_loss_forward(a, near(x), near(y), near(t_prime), near(bias), near(loss));
  }
  void sigmoid_loss_backward(const kernels::SigmoidLossArgs& a, const T* x, const T* y, const T* t_prime,
                             const T* bias, const T* g, T* dx, T* dy, T* dt_prime, T* dbias) const override {
    cpu().sigmoid_loss_backward(a, near(x), near(y), near(t_prime), near(bias), near(g), near(dx), near(dy),
                                near(dt_prime), near(dbias));
  }
  void adamw_update(T* p, const T* g, T* m, T* v, int64_t n, const kernels::AdamWArgs& a) const override {
    cpu().adamw_update(near(p), near(g), near(m), near(v), n, a);
  }
  void sgd_update(T* p, const T* g, T* buf, int64_t n, const kernels::SgdArgs& a) const override {
    cpu().sgd_update(near(p), near(g), near(buf), n, a);
  }
  void lion_update(T* p, const T* g, T* m, int64_t n, const kernels::LionArgs& a) const override {
    cpu().lion_update(near(p), near(g), near(m), n, a);
  }
  void global_norm(const std::vector<Span<const T>>& xs, double* norm) const override {
    cpu().global_norm(near(xs), near(norm));
  }
  void clip_by_norm(const std::vector<Span<T>>& xs, const double* norm, double max_norm) const override {
    cpu().clip_by_norm(near(xs), near(norm), max_norm);
  }

 private:
  static const kernels::Kernels<T>& cpu() { return kernels::on<T>(Device::cpu()); }
};

class Backend : public BackendOf<Kernels, MemoryKernels> {
 public:
  std::string name() const override { return "far"; }
  int device_count() const override { return 1; }
  siglite::Allocator& allocator(int) override { return allocator_; }
  Allocator& far_allocator() { return allocator_; }

 private:
  Allocator allocator_;
};

inline Backend& backend() {
  static Backend* b = new Backend();
  return *b;
}

}  // namespace far

/// The far device, its backend registered on first use.
inline Device far_device() {
  static const bool registered = backends::register_backend(DeviceType::PrivateUse, &far::backend());
  (void)registered;
  return Device(DeviceType::PrivateUse, 0);
}

/// Copies from the far device to the host so far.
inline int64_t far_syncs() { return far::backend().far_allocator().syncs(); }

}  // namespace siglite::testing
