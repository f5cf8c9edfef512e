// CPU GEMM: oneDNN for float (sgemm for one GEMM, matmul primitives cached per shape and layout for a
// batch and for a linear layer), Eigen for double and for builds without oneDNN.
#pragma once
#include <Eigen/Core>
#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "siglite/backends/kernels.hpp"
#include "siglite/backends/cpu/allocator.hpp"

#ifdef SIGLITE_WITH_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace siglite::cpu {

using kernels::GemmArgs;

/// Weights packed by the float linear forward for reuse, on the thread that made this cache and for its lifetime
/// (siglite::InferenceMode makes one). A weight is known by its address and extents; its entry keeps the weight's
/// owner alive, so that address cannot come back for other data while the entry exists. The weights must not
/// change while the cache is alive: a packed copy would not see the change. Caches nest: while one is alive on a
/// thread, one made after it there holds nothing and the first keeps serving.
class PackedWeights {
 public:
  PackedWeights() : serving_(current() == nullptr) {
    if (serving_) current() = this;
  }
  ~PackedWeights() {
    if (serving_) current() = nullptr;
    for (auto& [key, e] : entries_) host_allocator().deallocate(e.data, e.bytes);
  }
  PackedWeights(const PackedWeights&) = delete;
  PackedWeights& operator=(const PackedWeights&) = delete;

  /// The cache serving this thread, or null.
  static PackedWeights* active() { return current(); }
  /// How many packed weights the cache serving this thread holds (0 when none serves it).
  static size_t active_count() { return current() ? current()->entries_.size() : 0; }

  /// The packed copy of the weight at w ([out, in]) in layout `layout` (a number the backend gives each packed
  /// layout), `bytes` long: made by pack(dst) the first time, or when the entry holds another layout.
  template <typename Pack>
  void* packed(const void* w, int64_t in, int64_t out, std::shared_ptr<const void> owner, int64_t layout,
               size_t bytes, Pack&& pack) {
    const auto key = std::make_tuple(w, in, out);
    auto it = entries_.find(key);
    if (it != entries_.end() && it->second.layout == layout) return it->second.data;
    HostAllocator& alloc = host_allocator();
    void* data = alloc.allocate(bytes);
    try {
      pack(data);
    } catch (...) {  // the cache stays as it was
      alloc.deallocate(data, bytes);
      throw;
    }
    if (it != entries_.end()) alloc.deallocate(it->second.data, it->second.bytes);
    entries_[key] = Entry{std::move(owner), data, bytes, layout};
    return data;
  }

 private:
  static PackedWeights*& current() {
    static thread_local PackedWeights* c = nullptr;
    return c;
  }
  struct Entry {
    std::shared_ptr<const void> owner;
    void* data = nullptr;
    size_t bytes = 0;
    int64_t layout = 0;
  };
  bool serving_;
  std::map<std::tuple<const void*, int64_t, int64_t>, Entry> entries_;
};

namespace detail {

template <typename T>
void gemm_eigen(const GemmArgs<T>& g, const T* a, const T* b, T* c) {
  using Mat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using CMap = Eigen::Map<const Mat, 0, Eigen::OuterStride<>>;
  using MMap = Eigen::Map<Mat, 0, Eigen::OuterStride<>>;
  for (int64_t i = 0; i < g.batch; ++i) {
    CMap A(a + i * g.stride_a, g.trans_a ? g.k : g.m, g.trans_a ? g.m : g.k, Eigen::OuterStride<>(g.lda));
    CMap B(b + i * g.stride_b, g.trans_b ? g.n : g.k, g.trans_b ? g.k : g.n, Eigen::OuterStride<>(g.ldb));
    MMap C(c + i * g.stride_c, g.m, g.n, Eigen::OuterStride<>(g.ldc));
    if (g.beta == T(0)) C.setZero();
    else if (g.beta != T(1)) C *= g.beta;
    if (g.trans_a && g.trans_b) C.noalias() += g.alpha * (A.transpose() * B.transpose());
    else if (g.trans_a) C.noalias() += g.alpha * (A.transpose() * B);
    else if (g.trans_b) C.noalias() += g.alpha * (A * B.transpose());
    else C.noalias() += g.alpha * (A * B);
  }
}

#ifdef SIGLITE_WITH_ONEDNN

/// One engine and stream for the process, and the matmul primitives built so far, keyed by
/// every size, stride and flag that shapes the primitive. The primitives are shared by every thread, so each is made
/// with a user scratchpad and every execution brings its own: oneDNN's default scratchpad is one buffer for all
/// primitives of the process, which two threads executing at once (two models trained side by side) would both
/// write.
class OneDnn {
 public:
  static OneDnn& instance() {
    static OneDnn* o = new OneDnn();
    return *o;
  }

  void sgemm(const GemmArgs<float>& g, const float* a, const float* b, float* c) {
    // A single GEMM goes to oneDNN's sgemm: its JIT kernels measured 5-10% faster than the matmul primitive's
    // brgemm ones on square shapes (oneDNN 2.6, AVX-512), and it needs no primitive, lock, memory objects or stream.
    if (g.batch == 1) {
      const dnnl::status st = dnnl::sgemm(g.trans_a ? 'T' : 'N', g.trans_b ? 'T' : 'N', g.m, g.n, g.k, g.alpha, a,
                                          g.lda, b, g.ldb, g.beta, c, g.ldc);
      SIGLITE_CHECK(st == dnnl::status::success, "gemm: oneDNN sgemm failed (status ", static_cast<int>(st), ")");
      return;
    }
    using dnnl::memory;
    const memory::dim ba = g.stride_a == 0 ? 1 : g.batch, bb = g.stride_b == 0 ? 1 : g.batch;
    const memory::desc a_md = matrix_md(ba, g.m, g.k, g.trans_a, g.lda, g.stride_a);
    const memory::desc b_md = matrix_md(bb, g.k, g.n, g.trans_b, g.ldb, g.stride_b);
    const memory::desc c_md = matrix_md(g.batch, g.m, g.n, false, g.ldc, g.stride_c);
    const Key key{g.trans_a, g.trans_b, g.m, g.n, g.k, g.lda, g.ldb, g.ldc, g.batch, g.stride_a, g.stride_b,
                  g.stride_c, g.alpha, g.beta};
    Matmul* prim = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = cache_.find(key);
      if (it == cache_.end()) {
        dnnl::primitive_attr attr;
        attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
        if (g.alpha != 1.0f) attr.set_output_scales(0, {g.alpha});
        if (g.beta != 0.0f) {
          dnnl::post_ops po;
          po.append_sum(g.beta);
          attr.set_post_ops(po);
        }
        const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), attr, engine_);
        it = cache_.emplace(key, Matmul{dnnl::matmul(pd), pd.scratchpad_desc()}).first;
      }
      prim = &it->second;
    }
    memory am(a_md, engine_, const_cast<float*>(a)), bm(b_md, engine_, const_cast<float*>(b)), cm(c_md, engine_, c);
    dnnl::stream s(engine_);
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}};
    Scratchpad pad(prim->scratchpad, engine_, args);
    prim->primitive.execute(s, args);
    s.wait();
  }

  /// y [rows, out] = x [rows, in] @ w^T (w [out, in]) + bias (bias [out], may be null) by a matmul primitive on
  /// all threads, the bias added by its kernel. The weight is first reordered into the blocked layout the
  /// primitive's kernel reads (one pass over the weight, small beside the GEMM). Reorder included, that ran
  /// -2% to +14% against per-block sgemm calls on the B/16 tower's four linear shapes and +1% to +7% on
  /// bench-tiny's (interleaved calls, 2 threads).
  /// With `owner` (what keeps w alive) and a PackedWeights cache serving this thread, the packed weight is taken
  /// from the cache, or made once and kept there.
  void linear(const float* x, const float* w, const float* bias, float* y, int64_t rows, int64_t in, int64_t out,
              const std::shared_ptr<const void>& owner) {
    using dnnl::memory;
    const LinearKey key{rows, in, out, bias != nullptr};
    LinearPrimitive* lp = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = linear_cache_.find(key);
      if (it == linear_cache_.end()) {
        const memory::desc x_md({rows, in}, memory::data_type::f32, memory::dims{in, 1});
        const memory::desc w_any({in, out}, memory::data_type::f32, memory::format_tag::any);
        const memory::desc b_md = bias ? memory::desc({1, out}, memory::data_type::f32, memory::dims{out, 1})
                                       : memory::desc();
        const memory::desc y_md({rows, out}, memory::data_type::f32, memory::dims{out, 1});
        dnnl::primitive_attr attr;
        attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
        const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(x_md, w_any, b_md, y_md), attr, engine_);
        const memory::desc w_md({in, out}, memory::data_type::f32, memory::dims{1, in});  // w^T as stored
        const dnnl::reorder::primitive_desc rd(engine_, w_md, engine_, pd.weights_desc(), attr);
        it = linear_cache_
                 .emplace(key, LinearPrimitive{dnnl::matmul(pd), dnnl::reorder(rd), x_md, w_md, b_md, y_md,
                                               pd.weights_desc(), pd.scratchpad_desc(), rd.scratchpad_desc(),
                                               layout_number(pd.weights_desc())})
                 .first;
      }
      lp = &it->second;
    }
    dnnl::stream s(engine_);
    memory wm(lp->w_md, engine_, const_cast<float*>(w));
    const auto pack = [&](void* dst) {
      std::unordered_map<int, memory> args{{DNNL_ARG_FROM, wm}, {DNNL_ARG_TO, memory(lp->packed_md, engine_, dst)}};
      Scratchpad pad(lp->reorder_scratchpad, engine_, args);
      lp->reorder.execute(s, args);
      s.wait();
    };
    PackedWeights* cache = owner ? PackedWeights::active() : nullptr;
    const size_t bytes = lp->packed_md.get_size();
    std::optional<ScratchBuffer> scratch;
    void* packed = nullptr;
    if (cache) {
      packed = cache->packed(w, in, out, owner, lp->layout, bytes, pack);
    } else {
      scratch.emplace(bytes);
      packed = scratch->data;
      pack(packed);
    }
    memory pm(lp->packed_md, engine_, packed);
    memory xm(lp->x_md, engine_, const_cast<float*>(x)), ym(lp->y_md, engine_, y);
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, pm}, {DNNL_ARG_DST, ym}};
    if (bias) args.emplace(DNNL_ARG_BIAS, memory(lp->b_md, engine_, const_cast<float*>(bias)));
    Scratchpad pad(lp->matmul_scratchpad, engine_, args);
    lp->matmul.execute(s, args);
    s.wait();
  }

 private:
  OneDnn() : engine_(dnnl::engine::kind::cpu, 0) {}

  /// A [batch, rows, cols] f32 operand with leading dimension ld, stored transposed when `trans`. A batch of one
  /// (a broadcast operand) gets the matrix's own span as its stride: with a stride of 0 oneDNN no longer sees a
  /// plain layout and falls back to its reference matmul, several hundred times slower.
  static dnnl::memory::desc matrix_md(int64_t batch, int64_t rows, int64_t cols, bool trans, int64_t ld,
                                      int64_t batch_stride) {
    using dnnl::memory;
    const int64_t stride = batch == 1 ? (trans ? cols : rows) * ld : batch_stride;
    return memory::desc({batch, rows, cols}, memory::data_type::f32,
                        trans ? memory::dims{stride, 1, ld} : memory::dims{stride, ld, 1});
  }
  using Key = std::tuple<bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                         int64_t, int64_t, float, float>;
  /// Bytes from the caching allocator for the length of a call.
  using LinearKey = std::tuple<int64_t, int64_t, int64_t, bool>;
  struct Matmul {
    dnnl::matmul primitive;
    dnnl::memory::desc scratchpad;
  };
  struct LinearPrimitive {
    dnnl::matmul matmul;
    dnnl::reorder reorder;
    dnnl::memory::desc x_md, w_md, b_md, y_md, packed_md, matmul_scratchpad, reorder_scratchpad;
    int64_t layout;  // packed_md's number: equal descriptors, equal numbers
  };
  /// The scratchpad of one execution, from the caching allocator, added to its arguments (none when the primitive
  /// needs none); it lives until the execution has waited.
  class Scratchpad {
   public:
    Scratchpad(const dnnl::memory::desc& md, const dnnl::engine& engine, std::unordered_map<int, dnnl::memory>& args) {
      const size_t bytes = md.get_size();
      if (bytes == 0) return;
      buffer_.emplace(bytes);
      args.emplace(DNNL_ARG_SCRATCHPAD, dnnl::memory(md, engine, buffer_->data));
    }

   private:
    std::optional<ScratchBuffer> buffer_;
  };
  /// The number of a packed weight layout, for PackedWeights (called with mu_ held).
  int64_t layout_number(const dnnl::memory::desc& md) {
    const auto it = std::find(layouts_.begin(), layouts_.end(), md);
    if (it != layouts_.end()) return it - layouts_.begin();
    layouts_.push_back(md);
    return static_cast<int64_t>(layouts_.size()) - 1;
  }
  dnnl::engine engine_;
  mutable std::mutex mu_;
  std::map<Key, Matmul> cache_;
  std::map<LinearKey, LinearPrimitive> linear_cache_;
  std::vector<dnnl::memory::desc> layouts_;
};

#endif

}  // namespace detail

template <typename T>
void gemm(const GemmArgs<T>& g, const T* a, const T* b, T* c) {
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
#ifdef SIGLITE_WITH_ONEDNN
  if constexpr (std::is_same_v<T, float>) {
    if (g.k > 0) return detail::OneDnn::instance().sgemm(g, a, b, c);
  }
#endif
  detail::gemm_eigen(g, a, b, c);
}

}  // namespace siglite::cpu
