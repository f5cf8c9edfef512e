// matmul: 2-D and batched (any number of broadcast batch axes). Transposed views are passed to
// the GEMM kernel as transposed operands, without copies. linear: x @ W^T + b as one node; linear_gelu: the
// same followed by GELU.
#pragma once
#include <memory>
#include <optional>
#include <vector>

#include "siglite/autograd/node.hpp"
#include "siglite/core/tensor.hpp"
#include "siglite/ops/elementwise.hpp"
#include "siglite/ops/reduce.hpp"

namespace siglite {

namespace detail {

/// How one operand [batch..., rows, cols] is handed to the GEMM kernel.
template <typename T>
struct GemmOperand {
  Tensor<T> t;  // keeps a copy alive when one was needed
  bool trans = false;
  int64_t ld = 0, batch_stride = 0;
};

/// Describes x (broadcast to `batch` batch axes) as a GEMM operand, copying only when its
/// layout has no (ld, batch stride) form.
template <typename T>
GemmOperand<T> gemm_operand(const Tensor<T>& x, const Shape& batch) {
  const size_t r = x.dim();
  const int64_t rows = x.shape()[r - 2], cols = x.shape()[r - 1];
  const int64_t s0 = x.strides()[r - 2], s1 = x.strides()[r - 1];
  GemmOperand<T> op{x};
  bool ok = true;
  if ((s1 == 1 || cols == 1) && s0 >= cols) {
    op.ld = rows == 1 ? cols : s0;
  } else if ((s0 == 1 || rows == 1) && s1 >= rows) {
    op.trans = true;
    op.ld = cols == 1 ? rows : s1;
  } else {
    ok = false;
  }
  // Batch axes: all broadcast (stride 0), or one uniform stride over the full batch.
  const size_t lead = batch.size() - (r - 2);
  bool broadcast = true, uniform = true;
  int64_t expect = -1;
  for (size_t i = batch.size(); i-- > 0;) {
    const int64_t ext = i < lead ? 1 : x.shape()[i - lead];
    const int64_t str = i < lead ? 0 : x.strides()[i - lead];
    if (ext != 1) broadcast = false;
    if (ext != batch[i]) uniform = false;
    if (batch[i] == 1) continue;
    if (expect < 0) {
      op.batch_stride = str;
      expect = str * batch[i];
    } else if (str != expect) {
      uniform = false;
    } else {
      expect *= batch[i];
    }
  }
  if (broadcast) op.batch_stride = 0;
  if (ok && (broadcast || uniform)) return op;
  Shape full = batch;
  full.push_back(rows);
  full.push_back(cols);
  op.t = x.expand(full).clone();
  op.trans = false;
  op.ld = cols;
  op.batch_stride = rows * cols;
  return op;
}

/// a @ b without history.
template <typename T>
Tensor<T> matmul_raw(const Tensor<T>& a, const Tensor<T>& b) {
  detail::check_same_device(a.device(), b.device(), "matmul");
  SIGLITE_CHECK(a.dim() >= 2 && b.dim() >= 2, "matmul: operands of shapes ", a.shape(), " and ", b.shape(),
                " need at least two axes each");
  const int64_t m = a.shape()[a.dim() - 2], k = a.shape().back(), n = b.shape().back();
  SIGLITE_CHECK(b.shape()[b.dim() - 2] == k, "matmul: shapes ", a.shape(), " and ", b.shape(),
                " do not match (", k, " != ", b.shape()[b.dim() - 2], ")");
  const Shape ba(std::vector<int64_t>(a.shape().begin(), a.shape().end() - 2));
  const Shape bb(std::vector<int64_t>(b.shape().begin(), b.shape().end() - 2));
  const Shape batch = broadcast_shapes(ba, bb, "matmul");
  Shape out_shape = batch;
  out_shape.push_back(m);
  out_shape.push_back(n);
  Tensor<T> out = Tensor<T>::empty(out_shape, a.device());
  const GemmOperand<T> oa = gemm_operand(a, batch), ob = gemm_operand(b, batch);
  kernels::GemmArgs<T> g;
  g.trans_a = oa.trans;
  g.trans_b = ob.trans;
  g.m = m;
  g.n = n;
  g.k = k;
  g.lda = oa.ld;
  g.ldb = ob.ld;
  g.ldc = n;
  g.batch = batch.numel();
  g.stride_a = oa.batch_stride;
  g.stride_b = ob.batch_stride;
  g.stride_c = m * n;
  if (g.stride_b == 0 && !g.trans_a && (g.batch == 1 || g.stride_a == m * g.lda)) {
    g.m *= g.batch;  // a shared right operand: fold the batch into the rows, one large GEMM
    g.batch = 1;
    g.stride_a = g.stride_c = 0;
  }
  kernels::on<T>(a.device()).gemm(g, oa.t.device_ptr(), ob.t.device_ptr(), out.device_ptr());
  return out;
}

}  // namespace detail

/// Matrix product over the last two axes; leading axes are batch axes and broadcast.
template <typename T>
Tensor<T> matmul(const Tensor<T>& a, const Tensor<T>& b) {
  const Tensor<T> as = a.detach(), bs = b.detach();
  return record("matmul", detail::matmul_raw(a, b), {a, b},
                [as, bs](const Tensor<T>& g, const std::vector<bool>& need) {
                  Tensor<T> ga, gb;
                  if (need[0]) ga = sum_to(detail::matmul_raw(g, bs.t()), as.shape());
                  if (need[1]) {
                    if (bs.dim() == 2 && as.dim() > 2) {  // shared weight: one GEMM over all rows
                      const int64_t k = as.shape().back(), n = g.shape().back();
                      gb = detail::matmul_raw(as.reshape({-1, k}).t(), g.reshape({-1, n}));
                    } else {
                      gb = sum_to(detail::matmul_raw(as.t(), g), bs.shape());
                    }
                  }
                  return std::vector<Tensor<T>>{ga, gb};
                });
}

namespace detail {

/// x @ weight^T + bias, then act when given, as one node (see linear and linear_gelu).
template <typename T>
Tensor<T> linear_act(const char* op, const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias,
                     std::optional<kernels::Unary> act) {
  SIGLITE_CHECK(weight.dim() == 2, op, ": weight of shape ", weight.shape(), " is not [out, in]");
  const int64_t in = weight.size(1), out = weight.size(0);
  SIGLITE_CHECK(x.dim() >= 1 && x.shape().back() == in, op, ": input of shape ", x.shape(), " for a weight of shape ",
                weight.shape());
  SIGLITE_CHECK(!bias.defined() || bias.shape() == Shape{out}, op, ": bias of shape ", bias.shape(),
                " for a weight of shape ", weight.shape());
  detail::check_same_device(x.device(), weight.device(), op);
  if (bias.defined()) detail::check_same_device(x.device(), bias.device(), op);
  const Device d = x.device();
  const int64_t rows = Shape(std::vector<int64_t>(x.shape().begin(), x.shape().end() - 1)).numel();
  const Tensor<T> xs = x.detach().contiguous(), ws = weight.detach().contiguous();
  Shape out_shape = x.shape();
  out_shape[out_shape.size() - 1] = out;
  // Without a graph the activation overwrites the pre-activation in place.
  const bool graph = records<T>({x, weight, bias});
  Tensor<T> y = Tensor<T>::empty(out_shape, d), a = act && graph ? Tensor<T>::empty(out_shape, d) : y;
  // Without a graph, a weight used where it lies (not copied by contiguous()) may be kept packed by an
  // InferenceMode; its storage keeps its address its own meanwhile.
  const std::shared_ptr<const void> owner = !graph && ws.shares_storage(weight) ? ws.impl().storage : nullptr;
  kernels::on<T>(d).linear_forward(xs.device_ptr(), ws.device_ptr(),
                                   bias.defined() ? bias.detach().contiguous().device_ptr() : nullptr, y.device_ptr(),
                                   act, a.device_ptr(), rows, in, out, owner);
  if (!graph) return a;
  // Backward keeps only what it reads: x for the weight's gradient, the weight for x's, and the pre-activation y
  // or the output a where act's derivative reads it.
  const Tensor<T> x_kept = weight.requires_grad() ? xs : Tensor<T>();
  const Tensor<T> w_kept = x.requires_grad() ? ws : Tensor<T>();
  const Tensor<T> ys = act && derivative_reads_x(*act) ? y : Tensor<T>();
  const Tensor<T> as = act && derivative_reads_y(*act) ? a.detach() : Tensor<T>();
  return record(op, a, {x, weight, bias},
                [xs = x_kept, ws = w_kept, x_shape = x.shape(), ys, as, act, rows, in, out](
                    const Tensor<T>& ga, const std::vector<bool>& need) {
                  const Device dev = ga.device();
                  const Tensor<T> gc = ga.contiguous();
                  const Tensor<T> gy = act ? Tensor<T>::empty(gc.shape(), dev) : Tensor<T>();
                  std::vector<Tensor<T>> grads(3);
                  if (need[0]) grads[0] = Tensor<T>::empty(x_shape, dev);
                  if (need[1]) grads[1] = Tensor<T>::empty({out, in}, dev);
                  if (need[2]) grads[2] = Tensor<T>::empty({out}, dev);
                  const auto ptr = [](const Tensor<T>& t) { return t.defined() ? t.device_ptr() : nullptr; };
                  kernels::on<T>(dev).linear_backward(ptr(xs), ptr(ws), ptr(ys), ptr(as), act, gc.device_ptr(), ptr(gy),
                                                      ptr(grads[0]), ptr(grads[1]), ptr(grads[2]), rows, in, out);
                  return grads;
                });
}

}  // namespace detail

/// x @ weight^T + bias as one node: x [..., in], weight [out, in], bias [out] (may be undefined). The bias is
/// added to each block of rows as its GEMM leaves it; backward is the input-gradient GEMM with the bias
/// gradient on the same blocks, and one weight-gradient GEMM.
template <typename T>
Tensor<T> linear(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias = {}) {
  return detail::linear_act("linear", x, weight, bias, std::nullopt);
}

/// gelu(x @ weight^T + bias) as one node (an MLP's first layer): the bias and GELU are applied to each block
/// of rows as its GEMM leaves it, and backward applies GELU's derivative the same way.
template <typename T>
Tensor<T> linear_gelu(const Tensor<T>& x, const Tensor<T>& weight, const Tensor<T>& bias = {},
                      GeluApprox approx = GeluApprox::Tanh) {
  return detail::linear_act("linear_gelu", x, weight, bias,
                            approx == GeluApprox::Tanh ? kernels::Unary::GeluTanh : kernels::Unary::GeluErf);
}

}  // namespace siglite
