// Every invalid call throws siglite::Error naming the op and the shapes or values involved.
#include <catch2/catch.hpp>
#include <siglite/siglite.hpp>

using namespace siglite;
using TF = Tensor<float>;
using Catch::Contains;

TEST_CASE("errors: shapes that do not broadcast", "[errors]") {
  const TF a = TF::zeros({2, 3}), b = TF::zeros({4});
  CHECK_THROWS_AS(a + b, Error);
  CHECK_THROWS_WITH(a + b, Contains("add") && Contains("[2,3]") && Contains("[4]") && Contains("broadcast"));
  CHECK_THROWS_WITH(a * b, Contains("mul") && Contains("[2,3]"));
  CHECK_THROWS_WITH(a - b, Contains("sub"));
  CHECK_THROWS_WITH(a / b, Contains("div"));
  CHECK_THROWS_WITH(maximum(a, b), Contains("maximum"));
  CHECK_THROWS_WITH(a.expand({2, 4}), Contains("expand") && Contains("[2,3]") && Contains("[2,4]"));
  CHECK_THROWS_WITH(sum_to(a, Shape{4}), Contains("sum_to"));
}

TEST_CASE("errors: axis out of range", "[errors]") {
  const TF x = TF::zeros({2, 3});
  CHECK_THROWS_WITH(sum(x, {2}), Contains("sum") && Contains("axis 2") && Contains("rank 2"));
  CHECK_THROWS_WITH(mean(x, {-3}), Contains("mean") && Contains("axis -3"));
  CHECK_THROWS_WITH(max(x, {5}), Contains("max"));
  CHECK_THROWS_WITH(sum(x, {0, 0}), Contains("named twice"));
  CHECK_THROWS_WITH(softmax(x, 2), Contains("softmax") && Contains("axis 2"));
  CHECK_THROWS_WITH(log_softmax(x, -3), Contains("log_softmax"));
  CHECK_THROWS_WITH(x.transpose(0, 2), Contains("transpose"));
  CHECK_THROWS_WITH(x.permute({0, 0}), Contains("permute") && Contains("repeated"));
  CHECK_THROWS_WITH(x.permute({0}), Contains("permute"));
  CHECK_THROWS_WITH(x.slice(3, 0, 1), Contains("slice"));
  CHECK_THROWS_WITH(x.slice(0, 0, 1, 0), Contains("slice") && Contains("step"));
  CHECK_THROWS_WITH(x.squeeze(0), Contains("squeeze"));
  CHECK_THROWS_WITH(x.unsqueeze(4), Contains("unsqueeze"));
  CHECK_THROWS_WITH(concat<float>({x, x}, 2), Contains("concat"));
  CHECK_THROWS_WITH(l2_normalize(x, 3), Contains("l2_normalize"));
  CHECK_THROWS_WITH(index_select(x, 2, Tensor<int64_t>::from_vector({0})), Contains("index_select"));
  CHECK_THROWS_WITH(x.cpu().at({0, 3}), Contains("at") && Contains("[2,3]"));
  CHECK_THROWS_WITH(x.cpu().at({0}), Contains("at"));
  CHECK_THROWS_WITH(x.size(2), Contains("size"));
}

TEST_CASE("errors: mismatched shapes in ops", "[errors]") {
  const TF x = TF::zeros({2, 3});
  CHECK_THROWS_WITH(matmul(x, TF::zeros({4, 2})), Contains("matmul") && Contains("[2,3]") && Contains("[4,2]"));
  CHECK_THROWS_WITH(matmul(x, TF::zeros({3})), Contains("matmul") && Contains("two axes"));
  CHECK_THROWS_WITH(matmul(TF::zeros({2, 2, 3}), TF::zeros({3, 3, 1})), Contains("matmul"));
  CHECK_THROWS_WITH(x.reshape({4, 2}), Contains("reshape") && Contains("[2,3]") && Contains("[4,2]"));
  CHECK_THROWS_WITH(x.reshape({-1, -1}), Contains("reshape"));
  CHECK_THROWS_WITH(layer_norm(x, TF::ones({2}), TF()), Contains("layer_norm") && Contains("weight") && Contains("[2]"));
  CHECK_THROWS_WITH(layer_norm(x, TF(), TF::ones({4})), Contains("layer_norm") && Contains("bias"));
  CHECK_THROWS_WITH(concat<float>({x, TF::zeros({3, 3})}, 1), Contains("concat") && Contains("[3,3]"));
  CHECK_THROWS_WITH(concat<float>({}, 0), Contains("concat"));
  CHECK_THROWS_WITH(stack<float>({x, TF::zeros({3, 2})}), Contains("stack"));
  CHECK_THROWS_WITH(index_select(x, 1, Tensor<int64_t>::from_vector({0, 3})),
                    Contains("index_select") && Contains("index 3") && Contains("[0, 3)"));
  CHECK_THROWS_WITH(index_select(x, 1, Tensor<int64_t>::from_vector({-1})), Contains("index -1"));
  CHECK_THROWS_WITH(embedding(TF::zeros({5, 2}), Tensor<int64_t>::from_vector({5})),
                    Contains("index 5") && Contains("[0, 5)"));
  CHECK_THROWS_WITH(embedding(TF::zeros({5}), Tensor<int64_t>::from_vector({0})), Contains("embedding"));
  CHECK_THROWS_WITH(patchify(TF::zeros({1, 3, 6, 6}), 4), Contains("patchify") && Contains("6x6"));
  CHECK_THROWS_WITH(patchify(TF::zeros({3, 6, 6}), 2), Contains("patchify") && Contains("[N, C, H, W]"));
  const TF q = TF::zeros({2, 3, 4});
  CHECK_THROWS_WITH(scaled_dot_product_attention(q, TF::zeros({2, 5, 3}), TF::zeros({2, 5, 4})),
                    Contains("scaled_dot_product_attention") && Contains("head sizes"));
  CHECK_THROWS_WITH(scaled_dot_product_attention(q, TF::zeros({2, 5, 4}), TF::zeros({2, 6, 4})),
                    Contains("sequence lengths"));
  CHECK_THROWS_WITH(scaled_dot_product_attention(q, TF::zeros({3, 5, 4}), TF::zeros({3, 5, 4})),
                    Contains("batch axes"));
  CHECK_THROWS_WITH(scaled_dot_product_attention(q, q, q, TF::zeros({4, 3})), Contains("mask") && Contains("[4,3]"));
  const TF x3 = TF::zeros({2, 3, 6});
  CHECK_THROWS_WITH(multi_head_attention(x3, x3, x3, 4), Contains("multi_head_attention") && Contains("4 heads"));
  CHECK_THROWS_WITH(multi_head_attention(TF::zeros({3, 6}), x3, x3, 3), Contains("multi_head_attention") && Contains("[3,6]"));
  CHECK_THROWS_WITH(multi_head_attention(x3, TF::zeros({2, 3, 3}), x3, 3), Contains("different widths"));
  CHECK_THROWS_WITH(multi_head_attention(x3, x3, TF::zeros({2, 4, 6}), 3), Contains("sequence lengths"));
  CHECK_THROWS_WITH(multi_head_attention(x3, TF::zeros({3, 3, 6}), TF::zeros({3, 3, 6}), 3), Contains("batch sizes"));
  CHECK_THROWS_WITH(multi_head_attention(x3, x3, x3, 3, TF::zeros({2, 3, 2})), Contains("mask") && Contains("[2,3,2]"));
  CHECK_THROWS_WITH(multi_head_attention(x3, x3, x3, 3, TF::zeros({2, 1, 1, 3}).set_requires_grad()),
                    Contains("no gradient"));
  CHECK_THROWS_WITH(multi_head_attention_packed(x3.slice(2, 0, 5), 1), Contains("multi_head_attention_packed") &&
                                                                        Contains("3 * heads"));
  CHECK_THROWS_WITH(multi_head_attention_packed(TF::zeros({3, 6}), 1), Contains("[3,6]"));
  CHECK_THROWS_WITH(multi_head_attention_packed(x3, 4), Contains("multi_head_attention_packed") && Contains("4 heads"));
  CHECK_THROWS_WITH(multi_head_attention_packed(x3, 1, TF::zeros({2, 3, 2})), Contains("mask") && Contains("[2,3,2]"));
  CHECK_THROWS_WITH(multi_head_attention_packed_at(x3, 3, 1), Contains("multi_head_attention_packed_at") &&
                                                              Contains("position 3") && Contains("[2,3,6]"));
  CHECK_THROWS_WITH(multi_head_attention_packed_at(x3, -1, 1), Contains("position -1"));
  CHECK_THROWS_WITH(multi_head_attention_packed_at(x3, 0, 4), Contains("4 heads"));
  CHECK_THROWS_WITH(multi_head_attention_packed_at(x3, 0, 1, TF::zeros({2, 1, 2, 3})),
                    Contains("mask") && Contains("[2,1,2,3]") && Contains("[2,1,3,3]"));
  CHECK_THROWS_WITH(multi_head_attention_packed_at(x3, 0, 1, TF::zeros({2, 1, 1, 2})),
                    Contains("mask") && Contains("[2,1,1,2]"));
  CHECK_THROWS_WITH(linear(x3, TF::zeros({4, 5})), Contains("linear") && Contains("[4,5]"));
  CHECK_THROWS_WITH(linear(x3, TF::zeros({6})), Contains("linear") && Contains("[out, in]"));
  CHECK_THROWS_WITH(linear(x3, TF::zeros({4, 6}), TF::zeros({5})), Contains("bias") && Contains("[5]"));
  CHECK_THROWS_WITH(linear_gelu(x3, TF::zeros({4, 5})), Contains("linear_gelu") && Contains("[4,5]"));
  CHECK_THROWS_WITH(linear_gelu(x3, TF::zeros({4, 6}), TF::zeros({4, 1})), Contains("linear_gelu") && Contains("bias"));
  Generator gen(1);
  CHECK_THROWS_WITH(dropout(x, 1.5, gen, true), Contains("dropout") && Contains("1.5"));
  CHECK_THROWS_WITH(TF::from_vector({1, 2, 3}, {2, 2}), Contains("from_vector") && Contains("[2,2]"));
  CHECK_THROWS_WITH(TF::empty({2, -1}), Contains("negative"));
  CHECK_THROWS_WITH(TF::arange(0.0f, 1.0f, 0.0f), Contains("arange"));
  CHECK_THROWS_WITH(x.item(), Contains("item") && Contains("[2,3]"));
}

TEST_CASE("errors: dtype and device mismatches", "[errors]") {
  // Tensors of different dtypes are different C++ types: mixing them does not compile. Integer
  // tensors cannot take gradients.
  CHECK_THROWS_WITH(Tensor<int64_t>::zeros({2}).set_requires_grad(), Contains("floating-point"));
  // Devices: only the CPU exists in this build; asking for another is an error, not a crash.
  CHECK_THROWS_WITH(TF::zeros({2}).to(Device::cuda(0)), Contains("cuda:0 is not available"));
  CHECK_THROWS_WITH(TF::zeros({2}, Device::cuda(0)), Contains("cuda:0"));
}

TEST_CASE("errors: backward misuse", "[errors]") {
  const TF x = TF::ones({3});
  CHECK_THROWS_WITH(sum(x).backward(), Contains("backward") && Contains("does not require grad"));
  const TF w = TF::ones({3}).set_requires_grad();
  TF y = w * 2.0f;
  CHECK_THROWS_WITH(y.backward(), Contains("backward") && Contains("[3]") && Contains("not a scalar"));
  CHECK_THROWS_WITH(y.backward(TF::ones({2})), Contains("backward") && Contains("[2]") && Contains("[3]"));
  CHECK_THROWS_WITH(y.set_requires_grad(false), Contains("leaf"));
  CHECK_THROWS_WITH(TF().shape(), Contains("undefined"));
}
