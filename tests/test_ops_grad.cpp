// Finite-difference gradient checks (double precision) for every differentiable op, on random
// shapes that include broadcasting.
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <siglite/siglite.hpp>

using namespace siglite;
using TD = Tensor<double>;
using Inputs = std::vector<TD>;

namespace {

TD leaf(const Shape& s, Generator& gen, double lo = -2, double hi = 2) {
  return TD::uniform(s, gen, lo, hi).set_requires_grad();
}

/// Values in [lo, hi] with |x| >= gap: keeps kinks (abs, relu) away from the finite-difference steps.
TD leaf_away_from_zero(const Shape& s, Generator& gen, double gap = 0.1) {
  TD t = TD::uniform(s, gen, gap, 2.0, Device::cpu());
  for (int64_t i = 0; i < t.numel(); ++i)
    if (gen.uniform() < 0.5) t.data()[i] = -t.data()[i];
  return t.to(default_device()).set_requires_grad();
}

void expect_grads(const std::function<TD(const Inputs&)>& f, const Inputs& in, const GradcheckOptions& options = {}) {
  const GradcheckResult r = gradcheck(f, in, options);
  INFO(r.message << " (max abs error " << r.max_abs_error << ")");
  CHECK(r.ok);
}

/// A random shape of rank 1..4 with extents 1..4, and a second shape that broadcasts with it.
std::pair<Shape, Shape> broadcast_pair(Generator& gen) {
  Shape a;
  const auto rank = 1 + gen.randint(4);
  for (uint64_t i = 0; i < rank; ++i) a.push_back(1 + static_cast<int64_t>(gen.randint(4)));
  Shape b;
  const auto drop = gen.randint(rank);
  for (size_t i = drop; i < a.size(); ++i) b.push_back(gen.uniform() < 0.4 ? 1 : a[i]);
  if (gen.uniform() < 0.5) std::swap(a, b);
  return {a, b};
}

}  // namespace

TEST_CASE("gradcheck: binary ops with broadcasting", "[gradcheck]") {
  Generator gen(11);
  for (int trial = 0; trial < 6; ++trial) {
    const auto [sa, sb] = broadcast_pair(gen);
    INFO("shapes " << sa << " and " << sb);
    expect_grads([](const Inputs& x) { return x[0] + x[1]; }, {leaf(sa, gen), leaf(sb, gen)});
    expect_grads([](const Inputs& x) { return x[0] - x[1]; }, {leaf(sa, gen), leaf(sb, gen)});
    expect_grads([](const Inputs& x) { return x[0] * x[1]; }, {leaf(sa, gen), leaf(sb, gen)});
    expect_grads([](const Inputs& x) { return x[0] / x[1]; }, {leaf(sa, gen), leaf_away_from_zero(sb, gen, 0.5)});
    expect_grads([](const Inputs& x) { return maximum(x[0], x[1]); }, {leaf(sa, gen), leaf(sb, gen)});
  }
  expect_grads([](const Inputs& x) { return x[0] * 3.0 + 1.5 - x[0] / 2.0; }, {leaf({3, 2}, gen)});
  expect_grads([](const Inputs& x) { return 2.0 / x[0] + (1.0 - x[0]); }, {leaf_away_from_zero({5}, gen, 0.5)});
}

TEST_CASE("gradcheck: unary ops", "[gradcheck]") {
  Generator gen(12);
  const Shape s{3, 4};
  const auto pos = [&] { return leaf(s, gen, 0.2, 3.0); };
  // 1/x, log x, sqrt x and x^-1/2 are steep near 0.2: with the default step (2^-10) the truncation error of 1/x,
  // h^4 f^(5) / 30 = 120 h^4 / (30 x^6), is 6e-8 there; a step of 2^-13 brings it to 1e-11.
  GradcheckOptions steep;
  steep.eps = std::ldexp(1.0, -13);
  expect_grads([](const Inputs& x) { return neg(x[0]); }, {leaf(s, gen)});
  expect_grads([](const Inputs& x) { return exp(x[0]); }, {leaf(s, gen)});
  expect_grads([](const Inputs& x) { return log(x[0]); }, {pos()}, steep);
  expect_grads([](const Inputs& x) { return sqrt(x[0]); }, {pos()}, steep);
  expect_grads([](const Inputs& x) { return rsqrt(x[0]); }, {pos()}, steep);
  expect_grads([](const Inputs& x) { return pow(x[0], 2.5); }, {pos()});
  expect_grads([](const Inputs& x) { return pow(x[0], -1.0); }, {pos()}, steep);
  expect_grads([](const Inputs& x) { return abs(x[0]); }, {leaf_away_from_zero(s, gen)});
  expect_grads([](const Inputs& x) { return relu(x[0]); }, {leaf_away_from_zero(s, gen)});
  expect_grads([](const Inputs& x) { return tanh(x[0]); }, {leaf(s, gen)});
  expect_grads([](const Inputs& x) { return sin(x[0]); }, {leaf(s, gen, -4, 4)});
  expect_grads([](const Inputs& x) { return cos(x[0]); }, {leaf(s, gen, -4, 4)});
  expect_grads([](const Inputs& x) { return sigmoid(x[0]); }, {leaf(s, gen, -8, 8)});
  expect_grads([](const Inputs& x) { return log_sigmoid(x[0]); }, {leaf(s, gen, -8, 8)});
  expect_grads([](const Inputs& x) { return softplus(x[0]); }, {leaf(s, gen, -8, 8)});
  expect_grads([](const Inputs& x) { return gelu(x[0]); }, {leaf(s, gen, -4, 4)});
  expect_grads([](const Inputs& x) { return gelu(x[0], GeluApprox::None); }, {leaf(s, gen, -4, 4)});
}

TEST_CASE("gradcheck: log_sigmoid and softplus stay exact far from zero", "[gradcheck]") {
  const TD x = TD::from_vector({-1e4, -50, 50, 1e4}).set_requires_grad();
  // The objective holds values near 1e4, whose rounding (1e-12) divided by the step (2^-10) is 1e-9.
  GradcheckOptions large;
  large.atol = 1e-8;
  expect_grads([](const Inputs& in) { return log_sigmoid(in[0]); }, {x}, large);
  expect_grads([](const Inputs& in) { return softplus(in[0]); }, {x.detach().clone().set_requires_grad()}, large);
}

TEST_CASE("gradcheck: reductions over axes", "[gradcheck]") {
  Generator gen(13);
  const Shape s{2, 3, 4};
  for (bool keep : {false, true}) {
    for (const std::vector<int64_t>& axes : {std::vector<int64_t>{}, {0}, {1}, {-1}, {0, 2}, {1, 2}}) {
      INFO("axes of size " << axes.size() << " keepdim " << keep);
      expect_grads([&](const Inputs& x) { return sum(x[0], axes, keep); }, {leaf(s, gen)});
      expect_grads([&](const Inputs& x) { return mean(x[0], axes, keep); }, {leaf(s, gen)});
      expect_grads([&](const Inputs& x) { return max(x[0], axes, keep); }, {leaf(s, gen)});
    }
  }
}

TEST_CASE("gradcheck: matmul, 2-D, batched, broadcast and transposed", "[gradcheck]") {
  Generator gen(14);
  const auto mm = [](const Inputs& x) { return matmul(x[0], x[1]); };
  expect_grads(mm, {leaf({3, 4}, gen), leaf({4, 5}, gen)});
  expect_grads(mm, {leaf({2, 3, 4}, gen), leaf({2, 4, 5}, gen)});
  expect_grads(mm, {leaf({2, 3, 4}, gen), leaf({4, 5}, gen)});
  expect_grads(mm, {leaf({3, 4}, gen), leaf({2, 4, 5}, gen)});
  expect_grads(mm, {leaf({2, 1, 3, 4}, gen), leaf({3, 4, 2}, gen)});
  expect_grads(mm, {leaf({2, 2, 3, 4}, gen), leaf({2, 2, 4, 3}, gen)});
  expect_grads([](const Inputs& x) { return matmul(x[0].t(), x[1]); }, {leaf({4, 3}, gen), leaf({4, 5}, gen)});
  expect_grads([](const Inputs& x) { return matmul(x[0], x[1].t()); }, {leaf({2, 3, 4}, gen), leaf({2, 5, 4}, gen)});
  expect_grads([](const Inputs& x) { return matmul(x[0].t(), x[1].t()); }, {leaf({2, 4, 3}, gen), leaf({5, 4}, gen)});
  expect_grads([](const Inputs& x) { return matmul(x[0].permute({1, 0, 2}), x[1]); },
               {leaf({3, 2, 4}, gen), leaf({2, 4, 2}, gen)});
}

TEST_CASE("gradcheck: softmax, log_softmax, layer_norm, l2_normalize", "[gradcheck]") {
  Generator gen(15);
  for (int64_t axis : {-1, 0, 1}) {
    expect_grads([axis](const Inputs& x) { return softmax(x[0], axis); }, {leaf({3, 4, 2}, gen)});
    expect_grads([axis](const Inputs& x) { return log_softmax(x[0], axis); }, {leaf({3, 4, 2}, gen)});
    expect_grads([axis](const Inputs& x) { return l2_normalize(x[0], axis); }, {leaf({3, 4, 2}, gen)});
  }
  expect_grads([](const Inputs& x) { return layer_norm(x[0], x[1], x[2], 1e-6); },
               {leaf({2, 3, 5}, gen), leaf({5}, gen), leaf({5}, gen)});
  expect_grads([](const Inputs& x) { return layer_norm(x[0], TD(), TD()); }, {leaf({4, 6}, gen)});
}

TEST_CASE("gradcheck: scaled dot-product attention", "[gradcheck]") {
  Generator gen(16);
  const auto attn = [](const Inputs& x) { return scaled_dot_product_attention(x[0], x[1], x[2]); };
  expect_grads(attn, {leaf({2, 3, 4}, gen), leaf({2, 5, 4}, gen), leaf({2, 5, 3}, gen)});
  expect_grads([](const Inputs& x) { return scaled_dot_product_attention(x[0], x[1], x[2], x[3], 0.7); },
               {leaf({2, 2, 3, 4}, gen), leaf({2, 2, 5, 4}, gen), leaf({2, 2, 5, 4}, gen), leaf({3, 5}, gen)});
  expect_grads([](const Inputs& x) { return scaled_dot_product_attention(x[0], x[1], x[2], x[3]); },
               {leaf({2, 1, 4}, gen), leaf({2, 6, 4}, gen), leaf({2, 6, 4}, gen), leaf({2, 1, 6}, gen)});
}

TEST_CASE("gradcheck: multi-head attention and linear", "[gradcheck]") {
  Generator gen(17);
  expect_grads([](const Inputs& x) { return multi_head_attention(x[0], x[1], x[2], 2); },
               {leaf({2, 3, 4}, gen), leaf({2, 5, 4}, gen), leaf({2, 5, 6}, gen)});
  const TD mask = TD::uniform({2, 1, 1, 5}, gen, -1, 1);
  expect_grads([mask](const Inputs& x) { return multi_head_attention(x[0], x[1], x[2], 2, mask, 0.6); },
               {leaf({2, 3, 4}, gen), leaf({2, 5, 4}, gen), leaf({2, 5, 4}, gen)});
  // One query shared by the batch (the MAP head's probe): a view with batch stride 0.
  expect_grads([](const Inputs& x) { return multi_head_attention(x[0].expand({3, 1, 4}), x[1], x[2], 2); },
               {leaf({1, 1, 4}, gen), leaf({3, 5, 4}, gen), leaf({3, 5, 4}, gen)});
  expect_grads([](const Inputs& x) { return multi_head_attention_packed(x[0], 2); }, {leaf({2, 3, 12}, gen)});
  expect_grads([mask](const Inputs& x) { return multi_head_attention_packed(x[0].transpose(0, 1), 2, mask, 0.6); },
               {leaf({5, 2, 12}, gen)});
  expect_grads([](const Inputs& x) { return multi_head_attention_packed_at(x[0], 2, 2); }, {leaf({2, 3, 12}, gen)});
  const TD row_mask = TD::uniform({2, 1, 5, 5}, gen, -1, 1);  // a different mask for each query row
  expect_grads([row_mask](const Inputs& x) { return multi_head_attention_packed_at(x[0], 1, 2, row_mask, 0.6); },
               {leaf({2, 5, 12}, gen)});
  expect_grads([](const Inputs& x) { return linear(x[0], x[1], x[2]); },
               {leaf({2, 3, 4}, gen), leaf({5, 4}, gen), leaf({5}, gen)});
  expect_grads([](const Inputs& x) { return linear(x[0].t(), x[1]); }, {leaf({4, 3}, gen), leaf({2, 4}, gen)});
  expect_grads([](const Inputs& x) { return linear_gelu(x[0], x[1], x[2]); },
               {leaf({2, 3, 4}, gen), leaf({5, 4}, gen), leaf({5}, gen)});
  expect_grads([](const Inputs& x) { return linear_gelu(x[0], x[1], TD(), GeluApprox::None); },
               {leaf({3, 4}, gen), leaf({2, 4}, gen)});
  // Enough rows for several row blocks, the last one shorter (run on one thread: the work is below the
  // parallel grain; the [backend] test covers the threaded path).
  expect_grads([](const Inputs& x) { return linear_gelu(x[0], x[1], x[2]); },
               {leaf({1201, 2}, gen), leaf({3, 2}, gen), leaf({3}, gen)});
}

TEST_CASE("multi_head_attention, on separate or packed q, k, v, equals scaled_dot_product_attention on split and "
          "merged heads", "[ops]") {
  Generator gen(18);
  const int64_t b = 2, l = 5, heads = 3, d = 4;
  const TD q = leaf({b, l, heads * d}, gen), k = leaf({b, l, heads * d}, gen), v = leaf({b, l, heads * d}, gen);
  std::vector<double> pad(static_cast<size_t>(b * l), 0.0);
  pad[3] = pad[4] = pad[9] = -std::numeric_limits<double>::infinity();  // padding keys of both items
  const TD mask = TD::from_vector(pad, {b, 1, 1, l});
  const auto split = [&](const TD& x) { return x.reshape({b, l, heads, d}).permute({0, 2, 1, 3}); };
  const TD ref = scaled_dot_product_attention(split(q), split(k), split(v), mask).permute({0, 2, 1, 3}).reshape({b, l, heads * d});
  const TD out = multi_head_attention(q, k, v, heads, mask);
  REQUIRE(out.shape() == ref.shape());
  using Grads = std::vector<std::vector<double>>;
  const auto grads = [&](const TD& y, const TD& cot) {
    for (const TD* x : {&q, &k, &v}) x->zero_grad();
    sum(y * cot).backward();
    return Grads{q.grad().to_vector(), k.grad().to_vector(), v.grad().to_vector()};
  };
  // got agrees with want's values and with its gradients of q, k and v for the cotangent cot.
  const auto expect_same = [&](const TD& got, const TD& cot, const std::vector<double>& want, const Grads& want_grads) {
    const Grads g = grads(got, cot);
    const auto a = got.to_vector();
    for (size_t i = 0; i < a.size(); ++i) CHECK(a[i] == Approx(want[i]).margin(1e-12));
    for (size_t t = 0; t < 3; ++t)
      for (size_t i = 0; i < g[t].size(); ++i) CHECK(g[t][i] == Approx(want_grads[t][i]).margin(1e-12));
  };
  const TD cot = TD::randn(out.shape(), gen);
  const Grads want = grads(ref, cot);
  expect_same(out, cot, ref.to_vector(), want);
  const TD packed = multi_head_attention_packed(concat<double>({q, k, v}, 2), heads, mask);
  REQUIRE(packed.shape() == ref.shape());
  expect_same(packed, cot, ref.to_vector(), want);
  // At one query position: that row of the whole, and its gradients, for a mask on the keys and for one that
  // differs by query row.
  const TD row_mask = TD::randn({b, 1, l, l}, gen);
  for (const TD& m : {mask, row_mask})
    for (int64_t at = 0; at < l; ++at) {
      INFO("position " << at << ", mask " << m.shape());
      const TD whole = multi_head_attention_packed(concat<double>({q, k, v}, 2), heads, m).slice(1, at, at + 1);
      const TD one = multi_head_attention_packed_at(concat<double>({q, k, v}, 2), at, heads, m);
      REQUIRE(one.shape() == Shape{b, 1, heads * d});
      const TD cot_at = TD::randn(one.shape(), gen);
      expect_same(one, cot_at, whole.to_vector(), grads(whole, cot_at));
    }
}

TEST_CASE("gradcheck: views", "[gradcheck]") {
  Generator gen(17);
  expect_grads([](const Inputs& x) { return x[0].reshape({4, -1}) * 2.0; }, {leaf({2, 3, 2}, gen)});
  expect_grads([](const Inputs& x) { return x[0].transpose(0, 2) * x[1]; }, {leaf({2, 3, 4}, gen), leaf({4, 3, 2}, gen)});
  expect_grads([](const Inputs& x) { return x[0].permute({2, 0, 1}).contiguous(); }, {leaf({2, 3, 4}, gen)});
  expect_grads([](const Inputs& x) { return x[0].slice(1, 1, 4, 2) * 3.0; }, {leaf({2, 5}, gen)});
  expect_grads([](const Inputs& x) { return x[0].slice(0, -2, 10); }, {leaf({4, 2}, gen)});
  expect_grads([](const Inputs& x) { return x[0].expand({3, 2, 4}) * x[1]; }, {leaf({2, 1}, gen), leaf({3, 2, 4}, gen)});
  expect_grads([](const Inputs& x) { return x[0].unsqueeze(1).squeeze(1).t(); }, {leaf({2, 3}, gen)});
}

TEST_CASE("gradcheck: concat, stack, index_select, embedding, patchify", "[gradcheck]") {
  Generator gen(18);
  expect_grads([](const Inputs& x) { return concat(x, 1); }, {leaf({2, 1, 3}, gen), leaf({2, 3, 3}, gen)});
  expect_grads([](const Inputs& x) { return concat(x, -1); }, {leaf({2, 2}, gen), leaf({2, 1}, gen), leaf({2, 3}, gen)});
  expect_grads([](const Inputs& x) { return stack(x, 0); }, {leaf({2, 3}, gen), leaf({2, 3}, gen)});
  expect_grads([](const Inputs& x) { return stack(x, 2); }, {leaf({2, 3}, gen), leaf({2, 3}, gen)});
  const auto idx = Tensor<int64_t>::from_vector({2, 0, 2, 1});
  expect_grads([&](const Inputs& x) { return index_select(x[0], 1, idx); }, {leaf({2, 3, 2}, gen)});
  const auto ids = Tensor<int64_t>::from_vector({0, 4, 4, 1, 2, 0}, {2, 3});
  expect_grads([&](const Inputs& x) { return embedding(x[0], ids); }, {leaf({5, 3}, gen)});
  expect_grads([](const Inputs& x) { return patchify(x[0], 2); }, {leaf({2, 3, 4, 6}, gen)});
}

TEST_CASE("gradcheck: dropout with a fixed mask", "[gradcheck]") {
  Generator gen(19);
  expect_grads(
      [](const Inputs& x) {
        Generator mask_gen(5);  // the same mask at every evaluation
        return dropout(x[0], 0.3, mask_gen, true);
      },
      {leaf({4, 5}, gen)});
}

TEST_CASE("gradcheck: a small composed model", "[gradcheck]") {
  Generator gen(20);
  expect_grads(
      [](const Inputs& x) {
        const TD h = gelu(matmul(layer_norm(x[0], x[1], x[2]), x[3]));
        return l2_normalize(sum(softmax(h, -1) * h, {1}), -1);
      },
      {leaf({2, 3, 4}, gen), leaf({4}, gen), leaf({4}, gen), leaf({4, 4}, gen)});
}
