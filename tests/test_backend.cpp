// The CPU kernel set: every kernel path (contiguous, strided, broadcast, parallel, oneDNN and
// Eigen GEMM) checked against a plain double-precision reference, and the caching allocator.
#include <catch2/catch.hpp>
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <utility>
#include <siglite/siglite.hpp>

using namespace siglite;
using TF = Tensor<float>;
using TD = Tensor<double>;
using Catch::Contains;

namespace {

TD to_double(const TF& x) {
  const std::vector<float> v = x.to_vector();
  return TD::from_vector(std::vector<double>(v.begin(), v.end()), x.shape());
}

/// Largest |a - b| / (1 + |b|) over all elements.
double max_rel_diff(const TF& a, const TD& b) {
  REQUIRE(a.shape() == b.shape());
  const auto va = a.to_vector();
  const auto vb = b.to_vector();
  double m = 0;
  for (size_t i = 0; i < va.size(); ++i) m = std::max(m, std::abs(va[i] - vb[i]) / (1 + std::abs(vb[i])));
  return m;
}

/// Reference matmul in double with three loops.
TD naive_matmul(const TD& a_any, const TD& b_any) {
  const TD a = a_any.cpu(), b = b_any.cpu();
  const int64_t m = a.size(0), k = a.size(1), n = b.size(1);
  TD c = TD::zeros({m, n}, Device::cpu());
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t p = 0; p < k; ++p) s += a.at({i, p}) * b.at({p, j});
      c.at({i, j}) = s;
    }
  return c;
}

}  // namespace

TEST_CASE("backend: float GEMM (oneDNN or Eigen) matches a double reference in every layout", "[backend]") {
  Generator gen(21);
  for (auto [m, k, n] : {std::tuple{1, 1, 1}, {7, 13, 5}, {64, 96, 33}, {130, 70, 257}}) {
    const TF a = TF::randn({m, k}, gen), b = TF::randn({k, n}, gen);
    const TD ref = naive_matmul(to_double(a), to_double(b));
    INFO("m=" << m << " k=" << k << " n=" << n);
    CHECK(max_rel_diff(matmul(a, b), ref) < 1e-4);
    CHECK(max_rel_diff(matmul(a.t().contiguous().t(), b), ref) < 1e-4);  // transposed left operand
    CHECK(max_rel_diff(matmul(a, b.t().contiguous().t()), ref) < 1e-4);  // transposed right operand
    CHECK(max_rel_diff(matmul(a.t().contiguous().t(), b.t().contiguous().t()), ref) < 1e-4);
    CHECK(max_rel_diff(matmul(a, b), naive_matmul(to_double(a), to_double(b))) < 1e-4);
  }
  // Batched with broadcast batch, folded shared weights, and a strided (sliced) operand.
  const TF x = TF::randn({3, 4, 8, 6}, gen), w = TF::randn({6, 5}, gen), wb = TF::randn({4, 6, 5}, gen);
  const TF y = matmul(x, w), yb = matmul(x, wb);
  const TF xs = TF::randn({8, 12}, gen).slice(1, 0, 12, 2);
  const TF ys = matmul(xs, w);
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 4; ++j) {
      const TF xi = x.slice(0, i, i + 1).slice(1, j, j + 1).reshape({8, 6});
      CHECK(max_rel_diff(y.slice(0, i, i + 1).slice(1, j, j + 1).reshape({8, 5}),
                         naive_matmul(to_double(xi), to_double(w))) < 1e-4);
      CHECK(max_rel_diff(yb.slice(0, i, i + 1).slice(1, j, j + 1).reshape({8, 5}),
                         naive_matmul(to_double(xi), to_double(wb.slice(0, j, j + 1).reshape({6, 5})))) < 1e-4);
    }
  CHECK(max_rel_diff(ys, naive_matmul(to_double(xs.contiguous()), to_double(w))) < 1e-4);
  CHECK(matmul(TF::zeros({3, 0}), TF::zeros({0, 4})).to_vector() == std::vector<float>(12, 0.0f));
}

TEST_CASE("backend: elementwise and reduction paths agree with double precision", "[backend]") {
  Generator gen(22);
  // Large enough to run on several threads; strided and broadcast operands take the row path.
  const TF a = TF::randn({64, 300}, gen), b = TF::randn({300}, gen), c = TF::randn({64, 1}, gen);
  const TD da = to_double(a), db = to_double(b), dc = to_double(c);
  CHECK(max_rel_diff(a * b + c, da * db + dc) < 1e-6);
  CHECK(max_rel_diff(a.t() - c.t(), da.t() - dc.t()) < 1e-6);
  CHECK(max_rel_diff(c / (abs(a.t().t()) + 1.0f), dc / (abs(da) + 1.0)) < 1e-6);
  CHECK(max_rel_diff(gelu(a), gelu(da)) < 1e-6);
  CHECK(max_rel_diff(gelu(a, GeluApprox::None), gelu(da, GeluApprox::None)) < 1e-6);
  CHECK(max_rel_diff(log_sigmoid(a * 100.0f), log_sigmoid(da * 100.0)) < 1e-6);
  const TF a10 = a * 10.0f;
  CHECK(max_rel_diff(sin(a10) + cos(a10.t().t()), sin(to_double(a10)) + cos(to_double(a10))) < 1e-6);
  // Rows, columns, and a permuted layout that needs a copy.
  const TF x = TF::randn({16, 32, 40}, gen);
  const TD dx = to_double(x);
  for (const std::vector<int64_t>& axes : {std::vector<int64_t>{2}, {0}, {0, 1}, {1}, {0, 2}}) {
    CHECK(max_rel_diff(sum(x, axes), sum(dx, axes)) < 1e-5);
    CHECK(max_rel_diff(max(x, axes), max(dx, axes)) < 1e-7);
    CHECK(max_rel_diff(sum(x.transpose(0, 2), axes), sum(dx.transpose(0, 2), axes)) < 1e-5);
  }
  CHECK(max_rel_diff(softmax(x, 1), softmax(dx, 1)) < 1e-6);
  CHECK(max_rel_diff(log_softmax(x * 50.0f, -1), log_softmax(dx * 50.0, -1)) < 1e-5);
  const TF w = TF::randn({40}, gen), bias = TF::randn({40}, gen);
  CHECK(max_rel_diff(layer_norm(x, w, bias, 1e-6), layer_norm(dx, to_double(w), to_double(bias), 1e-6)) < 1e-5);
}

TEST_CASE("backend: topk_indices is a stable descending sort's first k, NaN first, over any layout", "[backend]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const TD x = TD::from_vector({3, 1, 3, nan, 2, 0, 0, 0, 0, 0}, {2, 5});
  CHECK(topk_indices(x, 3).shape() == Shape{2, 3});
  CHECK(topk_indices(x, 3).to_vector() == std::vector<int64_t>{3, 0, 2, 0, 1, 2});
  CHECK(topk_indices(x, 5).to_vector() == std::vector<int64_t>{3, 0, 2, 4, 1, 0, 1, 2, 3, 4});
  CHECK(topk_indices(x, 0).shape() == Shape{2, 0});
  const TD strided = TD::from_vector({1, 5, 2, 4, 3, 0}, {3, 2}).t();  // rows (1, 2, 3) and (5, 4, 0)
  CHECK(topk_indices(strided, 2).to_vector() == std::vector<int64_t>{2, 1, 0, 1});
  CHECK(topk_indices(TF::from_vector({-1, 5, 4}), 2).to_vector() == std::vector<int64_t>{1, 2});
  CHECK(topk_indices(x.reshape({2, 1, 5}), 2).shape() == Shape{2, 1, 2});
}

TEST_CASE("backend: linear and linear_gelu over many row blocks agree with matmul, bias and gelu in double",
          "[backend]") {
  Generator gen(25);
  // 1037 rows: several row blocks per thread, the last one shorter; x a permuted view (copied once).
  const TF x = TF::randn({61, 17, 24}, gen).permute({1, 0, 2}), w = TF::randn({40, 24}, gen),
           b = TF::randn({40}, gen), g = TF::randn({17, 61, 40}, gen);
  for (const bool act : {false, true}) {
    INFO((act ? "linear_gelu" : "linear"));
    const TF xf = x.detach().set_requires_grad(), wf = w.detach().set_requires_grad(),
             bf = b.detach().set_requires_grad();
    const TD xd = to_double(x).set_requires_grad(), wd = to_double(w).set_requires_grad(),
             bd = to_double(b).set_requires_grad();
    const TF yf = act ? linear_gelu(xf, wf, bf) : linear(xf, wf, bf);
    const TD pre = matmul(xd, wd.t()) + bd, yd = act ? gelu(pre) : pre;
    CHECK(max_rel_diff(yf, yd) < 1e-5);
    sum(yf * g).backward();
    sum(yd * to_double(g)).backward();
    CHECK(max_rel_diff(xf.grad(), xd.grad()) < 5e-5);  // float GELU derivative: as gelu(matmul(x, w^T) + b) in float
    CHECK(max_rel_diff(wf.grad(), wd.grad()) < 1e-4);  // sums of 1037 terms
    CHECK(max_rel_diff(bf.grad(), bd.grad()) < 1e-4);
    // The same in double (Eigen's GEMM on each block, inside the parallel region) agrees to rounding.
    const TD xd2 = to_double(x).set_requires_grad(), wd2 = to_double(w).set_requires_grad(),
             bd2 = to_double(b).set_requires_grad();
    const TD y2 = act ? linear_gelu(xd2, wd2, bd2) : linear(xd2, wd2, bd2);
    sum(y2 * to_double(g)).backward();
    for (const auto& [got, want] : {std::pair{y2, yd}, {xd2.grad(), xd.grad()}, {wd2.grad(), wd.grad()},
                                    {bd2.grad(), bd.grad()}}) {
      const auto u = got.to_vector(), v = want.to_vector();
      REQUIRE(u.size() == v.size());
      double m = 0;
      for (size_t i = 0; i < u.size(); ++i) m = std::max(m, std::abs(u[i] - v[i]) / (1 + std::abs(v[i])));
      CHECK(m < 1e-12);
    }
    // Without a graph (GELU in place over the pre-activation) the values are the same.
    NoGradGuard no_grad;
    const TF yn = act ? linear_gelu(x, w, b) : linear(x, w, b);
    CHECK(yn.to_vector() == yf.to_vector());
  }
  // A weight that alone needs a gradient (no bias): the blocks run GELU's derivative only.
  const TF wf = w.detach().set_requires_grad();
  const TD wd = to_double(w).set_requires_grad();
  sum(linear_gelu(x, wf) * g).backward();
  sum(gelu(matmul(to_double(x), wd.t())) * to_double(g)).backward();
  CHECK(max_rel_diff(wf.grad(), wd.grad()) < 1e-4);
  // No inputs per row: the bias on every row, its gradient the column sums.
  const TF bz = TF::from_vector({1.5f, -2.0f}, {2}).set_requires_grad();
  const TF yz = linear(TF::zeros({3, 0}), TF::zeros({2, 0}), bz);
  CHECK(yz.to_vector() == std::vector<float>{1.5f, -2.0f, 1.5f, -2.0f, 1.5f, -2.0f});
  sum(yz * TF::from_vector({1, 2, 3, 4, 5, 6}, {3, 2})).backward();
  CHECK(bz.grad().to_vector() == std::vector<float>{9.0f, 12.0f});
}

TEST_CASE("backend: float sums of millions of terms lose only their final rounding", "[backend]") {
  // 2^22 copies of 0.1f: a float accumulator drifts by percents once its ulp nears 0.1; the sum must be the
  // exact one rounded once, for a reduction along rows, along columns, and of everything.
  const int64_t n = int64_t{1} << 22;
  const double exact = static_cast<double>(n) * static_cast<double>(0.1f);
  const auto rel = [exact](float v, double scale) { return std::abs(v / scale - exact) / exact; };
  CHECK(rel(sum(TF::full({n}, 0.1f)).item(), 1) < 1e-7);
  const TF rows = sum(TF::full({4, n / 4}, 0.1f), {1});
  for (float v : rows.to_vector()) CHECK(rel(v, 0.25) < 1e-7);
  const TF cols = sum(TF::full({n / 4, 4}, 0.1f), {0});
  for (float v : cols.to_vector()) CHECK(rel(v, 0.25) < 1e-7);
}

TEST_CASE("backend: float sigmoid keeps its relative precision far below zero", "[backend]") {
  // SigLIP's negative pairs sit near logit -10, where sigmoid is about 5e-5 and is the gradient itself.
  const TF x = TF::arange(-30.0f, 10.0f, 0.01f);
  const std::vector<float> y = sigmoid(x).to_vector();
  const std::vector<float> xv = x.to_vector();
  double worst = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    const double exact = 1.0 / (1.0 + std::exp(-double(xv[i])));
    worst = std::max(worst, std::abs(double(y[i]) - exact) / exact);
  }
  CHECK(worst < 1e-6);
}

TEST_CASE("backend: a fully masked row: softmax zeros, log-softmax -inf, attention zeros, no gradient", "[backend]") {
  const float inf = std::numeric_limits<float>::infinity();
  const TF x = TF::from_vector({-inf, -inf, 1, 2}, {2, 2}).set_requires_grad();
  const TF y = softmax(x);
  const auto v = y.to_vector();
  CHECK(v[0] == 0.0f);  // the masked row itself
  CHECK(v[1] == 0.0f);
  CHECK(v[2] + v[3] == Approx(1.0f));
  sum(y * TF::from_vector({1, 2, 3, 4}, {2, 2})).backward();
  CHECK(x.grad().to_vector()[0] == 0.0f);
  CHECK(x.grad().to_vector()[1] == 0.0f);
  const TF z = TF::from_vector({-inf, -inf, 1, 2}, {2, 2}).set_requires_grad();
  const TF ly = log_softmax(z);
  CHECK(ly.to_vector()[0] == -inf);
  CHECK(ly.to_vector()[1] == -inf);
  ly.backward(TF::ones({2, 2}));
  CHECK(z.grad().to_vector()[0] == 0.0f);
  CHECK(z.grad().to_vector()[1] == 0.0f);
  CHECK(z.grad().to_vector()[2] != 0.0f);
  // Attention: the first query of each item sees no key; its output is zeros and the gradients stay finite.
  Generator gen(3);
  const TF q = TF::randn({2, 2, 4}, gen).set_requires_grad(), k = TF::randn({2, 3, 4}, gen).set_requires_grad();
  const TF vv = TF::randn({2, 3, 4}, gen).set_requires_grad();
  const TF mask = TF::from_vector({-inf, -inf, -inf, 0, 0, -inf}, {1, 1, 2, 3});
  for (const TF& out : {multi_head_attention(q, k, vv, 2, mask), scaled_dot_product_attention(q, k, vv, mask.reshape({1, 2, 3}))}) {
    const auto o = out.to_vector();
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t c = 0; c < 4; ++c) CHECK(o[static_cast<size_t>(b * 8 + c)] == 0.0f);
    for (float e : o) CHECK(std::isfinite(e));
    sum(out).backward();
    for (const TF& t : {q, k, vv})
      for (float g : t.grad().to_vector()) CHECK(std::isfinite(g));
    const auto gq = q.grad().to_vector();  // the masked query passes no gradient
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t c = 0; c < 4; ++c) CHECK(gq[static_cast<size_t>(b * 8 + c)] == 0.0f);
    for (const TF& t : {q, k, vv}) t.zero_grad();
  }
}

TEST_CASE("backend: Philox4x32-10 gives Random123's known answers, and the random kernel uses its words", "[backend]") {
  using Words = std::array<uint32_t, 4>;
  const auto block = [](Words c, uint32_t k0, uint32_t k1) {
    kernels::philox::rounds(c.data(), k0, k1);
    return c;
  };
  // Random123's kat_vectors for philox4x32 with 10 rounds.
  CHECK(block({0, 0, 0, 0}, 0, 0) == Words{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8});
  CHECK(block({~0u, ~0u, ~0u, ~0u}, ~0u, ~0u) == Words{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd});
  CHECK(block({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, 0xa4093822, 0x299f31d0) ==
        Words{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1});
  // Key 0: the uniform floats of block 0 are its words' top 24 bits, the doubles its two 64-bit halves' top 53.
  std::vector<float> f(6);
  kernels::on<float>(Device::cpu()).random(kernels::Random::Uniform, f.data(), 6, 0, 0.0f, 1.0f);
  const Words w = block({0, 0, 0, 0}, 0, 0);
  for (size_t j = 0; j < 4; ++j) CHECK(f[j] == static_cast<float>(w[j] >> 8) * 0x1.0p-24f);
  std::vector<double> d(2);
  kernels::on<double>(Device::cpu()).random(kernels::Random::Uniform, d.data(), 2, 0, 0.0, 1.0);
  CHECK(d[0] == static_cast<double>(((uint64_t(w[0]) << 32) | w[1]) >> 11) * 0x1.0p-53);
  CHECK(d[1] == static_cast<double>(((uint64_t(w[2]) << 32) | w[3]) >> 11) * 0x1.0p-53);
  // Value i depends on (key, i) alone: a shorter draw is a prefix of a longer one.
  std::vector<float> longer(11), shorter(7);
  kernels::on<float>(Device::cpu()).random(kernels::Random::Normal, longer.data(), 11, 42, 0.0f, 1.0f);
  kernels::on<float>(Device::cpu()).random(kernels::Random::Normal, shorter.data(), 7, 42, 0.0f, 1.0f);
  CHECK(std::equal(shorter.begin(), shorter.end(), longer.begin()));
}

TEST_CASE("backend: randn, uniform and bernoulli have their distributions' moments, one key per tensor", "[backend]") {
  Generator gen(31);
  const int64_t n = 400000;  // several threads' worth of blocks
  const auto moments = [](const std::vector<double>& v) {
    double m = 0, m2 = 0, tail = 0;
    for (double x : v) m += x;
    m /= static_cast<double>(v.size());
    for (double x : v) {
      m2 += (x - m) * (x - m);
      tail += std::abs(x - m) > 3.0;
    }
    return std::array<double, 3>{m, m2 / static_cast<double>(v.size()), tail / static_cast<double>(v.size())};
  };
  const std::vector<float> zf = TF::randn({n}, gen, 1.0f, 2.0f).to_vector();
  const auto mf = moments(std::vector<double>(zf.begin(), zf.end()));
  CHECK(std::abs(mf[0] - 1.0) < 0.02);
  CHECK(std::abs(mf[1] - 4.0) < 0.05);
  CHECK(std::abs(mf[2] - 0.1336) < 0.003);  // P(|z| > 1.5) for a standard normal
  const auto md = moments(TD::randn({n}, gen).to_vector());
  CHECK(std::abs(md[0]) < 0.01);
  CHECK(std::abs(md[1] - 1.0) < 0.01);
  CHECK(std::abs(md[2] - 0.0027) < 0.0005);  // P(|z| > 3)
  const std::vector<float> u = TF::uniform({n}, gen, -1.0f, 3.0f).to_vector();
  CHECK(*std::min_element(u.begin(), u.end()) >= -1.0f);
  CHECK(*std::max_element(u.begin(), u.end()) < 3.0f);
  const auto mu = moments(std::vector<double>(u.begin(), u.end()));
  CHECK(std::abs(mu[0] - 1.0) < 0.01);
  CHECK(std::abs(mu[1] - 16.0 / 12.0) < 0.01);
  const std::vector<double> b = TD::bernoulli({n}, gen, 0.3, 5.0).to_vector();
  CHECK(std::count(b.begin(), b.end(), 5.0) + std::count(b.begin(), b.end(), 0.0) == n);
  CHECK(std::abs(static_cast<double>(std::count(b.begin(), b.end(), 5.0)) / n - 0.3) < 0.005);
  // Each tensor takes one 64-bit key from the generator: the same seed, the same tensors.
  Generator g1(4), g2(4);
  CHECK(TF::randn({3, 5}, g1).to_vector() == TF::randn({3, 5}, g2).to_vector());
  CHECK(g1.next_u64() == g2.next_u64());
  CHECK(TF::randn({5}, g1).to_vector() != TF::randn({5}, g1).to_vector());
  CHECK_THROWS_WITH(TF::bernoulli({2}, gen, 1.5f), Contains("bernoulli") && Contains("1.5"));
}

TEST_CASE("backend: dropout keeps about 1-p of the elements and rescales them", "[backend]") {
  Generator gen(23);
  const TF x = TF::ones({100000});
  const TF y = dropout(x, 0.25, gen, true);
  const auto v = y.to_vector();
  int64_t kept = 0, other = 0;
  for (float e : v) {
    kept += e == 1.0f / 0.75f;
    other += e != 0.0f && e != 1.0f / 0.75f;
  }
  CHECK(other == 0);
  CHECK(std::abs(static_cast<double>(kept) / 100000 - 0.75) < 0.01);
  CHECK(dropout(x, 0.25, gen, false).shares_storage(x));
  CHECK(sum(dropout(x, 1.0, gen, true)).item() == 0.0f);
  Generator g1(9), g2(9);
  CHECK(dropout(x, 0.5, g1, true).to_vector() == dropout(x, 0.5, g2, true).to_vector());
}

TEST_CASE("backend: a repeated training step allocates nothing from the system", "[backend]") {
  Generator gen(24);
  const TF w1 = TF::randn({32, 64}, gen).set_requires_grad(), w2 = TF::randn({64, 8}, gen).set_requires_grad();
  const TF x = TF::randn({16, 32}, gen);
  const auto step = [&] {
    const TF loss = sum(softmax(matmul(gelu(layer_norm(matmul(x, w1), TF(), TF())), w2)));
    loss.backward();
    w1.zero_grad();
    w2.zero_grad();
  };
  step();
  step();
  const AllocatorStats before = memory_stats();
  for (int i = 0; i < 3; ++i) step();
  const AllocatorStats after = memory_stats();
  CHECK(after.system_allocations == before.system_allocations);
  CHECK(after.cache_hits > before.cache_hits);
}

TEST_CASE("backend: the allocator aligns blocks to 64 bytes, and blocks of 2 MiB or more to 2 MiB", "[backend]") {
  Allocator& alloc = backends::of(Device::cpu()).allocator(0);
  const size_t huge_page = size_t(2) << 20;
  for (const size_t bytes : {size_t(100), size_t(4096) + 8, huge_page - 256, huge_page, 3 * huge_page + 1000}) {
    void* p = alloc.allocate(bytes);
    const auto address = reinterpret_cast<uintptr_t>(p);
    INFO("bytes " << bytes);
    CHECK(address % 64 == 0);
    if (bytes >= huge_page) CHECK(address % huge_page == 0);
    static_cast<char*>(p)[bytes - 1] = 1;  // the whole request is usable
    alloc.deallocate(p, bytes);
  }
}

TEST_CASE("backend: the allocator returns cached blocks to the system on request", "[backend]") {
  Allocator& alloc = backends::of(Device::cpu()).allocator(0);
  { const TF t = TF::zeros({1 << 16}); }
  CHECK(alloc.stats().bytes_cached >= (1 << 18));
  alloc.empty_cache();
  CHECK(alloc.stats().bytes_cached == 0);
  const int64_t sys = alloc.stats().system_allocations;
  { const TF t = TF::zeros({1 << 16}); }
  CHECK(alloc.stats().system_allocations == sys + 1);
}
