// CPU GEMM: oneDNN for float (sgemm for one GEMM, matmul primitives cached per shape and layout for a
// batch and for a linear layer), Eigen for double and for builds without oneDNN.
#pragma once
#include <Eigen/Core>
#include <map>
#include <mutex>
#include <tuple>
#include <unordered_map>

#include "siglite/core/allocator.hpp"

#ifdef SIGLITE_WITH_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace siglite::cpu {

using kernels::GemmArgs;

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
/// every size, stride and flag that shapes the primitive.
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
    dnnl::matmul* prim = nullptr;
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = cache_.find(key);
      if (it == cache_.end()) {
        dnnl::primitive_attr attr;
        if (g.alpha != 1.0f) attr.set_output_scales(0, {g.alpha});
        if (g.beta != 0.0f) {
          dnnl::post_ops po;
          po.append_sum(g.beta);
          attr.set_post_ops(po);
        }
        const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a_md, b_md, c_md), attr, engine_);
        it = cache_.emplace(key, dnnl::matmul(pd)).first;
      }
      prim = &it->second;
    }
    memory am(a_md, engine_, const_cast<float*>(a)), bm(b_md, engine_, const_cast<float*>(b)), cm(c_md, engine_, c);
    dnnl::stream s(engine_);
    prim->execute(s, {{DNNL_ARG_SRC, am}, {DNNL_ARG_WEIGHTS, bm}, {DNNL_ARG_DST, cm}});
    s.wait();
  }

  /// y [rows, out] = x [rows, in] @ w^T (w [out, in]) + bias (bias [out], may be null) by a matmul primitive on
  /// all threads, the bias added by its kernel. The weight is first reordered into the blocked layout the
  /// primitive's kernel reads (one pass over the weight, small beside the GEMM). Reorder included, that ran
  /// -2% to +14% against per-block sgemm calls on the B/16 tower's four linear shapes and +1% to +7% on
  /// bench-tiny's (interleaved calls, 2 threads).
  void linear(const float* x, const float* w, const float* bias, float* y, int64_t rows, int64_t in, int64_t out) {
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
        const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(x_md, w_any, b_md, y_md), engine_);
        const memory::desc w_md({in, out}, memory::data_type::f32, memory::dims{1, in});  // w^T as stored
        const dnnl::reorder::primitive_desc rd(engine_, w_md, engine_, pd.weights_desc());
        it = linear_cache_
                 .emplace(key, LinearPrimitive{dnnl::matmul(pd), dnnl::reorder(rd), x_md, w_md, b_md, y_md,
                                               pd.weights_desc()})
                 .first;
      }
      lp = &it->second;
    }
    const ScratchBuffer packed(lp->packed_md.get_size());
    memory wm(lp->w_md, engine_, const_cast<float*>(w)), pm(lp->packed_md, engine_, packed.data);
    memory xm(lp->x_md, engine_, const_cast<float*>(x)), ym(lp->y_md, engine_, y);
    dnnl::stream s(engine_);
    lp->reorder.execute(s, wm, pm);
    std::unordered_map<int, memory> args{{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, pm}, {DNNL_ARG_DST, ym}};
    if (bias) args.emplace(DNNL_ARG_BIAS, memory(lp->b_md, engine_, const_cast<float*>(bias)));
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
  struct ScratchBuffer {
    explicit ScratchBuffer(size_t n) : bytes(n), data(CpuAllocator::instance().allocate(n)) {}
    ~ScratchBuffer() { CpuAllocator::instance().deallocate(data, bytes); }
    ScratchBuffer(const ScratchBuffer&) = delete;
    ScratchBuffer& operator=(const ScratchBuffer&) = delete;
    size_t bytes;
    void* data;
  };
  using LinearKey = std::tuple<int64_t, int64_t, int64_t, bool>;
  struct LinearPrimitive {
    dnnl::matmul matmul;
    dnnl::reorder reorder;
    dnnl::memory::desc x_md, w_md, b_md, y_md, packed_md;
  };
  dnnl::engine engine_;
  mutable std::mutex mu_;
  std::map<Key, dnnl::matmul> cache_;
  std::map<LinearKey, LinearPrimitive> linear_cache_;
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
