// The autograd engine: accumulation, shared subgraphs, retain_graph, no-grad, detach, deep graphs
// and the freeing of saved tensors.
#include <catch2/catch.hpp>
#include <siglite/siglite.hpp>

using namespace siglite;
using TD = Tensor<double>;

TEST_CASE("autograd: a tensor used several times accumulates its gradient", "[autograd]") {
  const TD x = TD::from_vector({1, 2, 3}).set_requires_grad();
  sum(x * x + x * 3.0 + x).backward();  // d/dx = 2x + 4
  CHECK(x.grad().to_vector() == std::vector<double>{6, 8, 10});
  sum(x).backward();  // gradients add up across backward calls
  CHECK(x.grad().to_vector() == std::vector<double>{7, 9, 11});
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
}

TEST_CASE("autograd: shared subgraphs run once with the summed gradient", "[autograd]") {
  const TD x = TD::from_vector({0.5, -1.0}).set_requires_grad();
  const TD h = exp(x);             // used by both branches
  const TD y = sum(h * h) + sum(h);  // d/dx = (2h + 1) h
  y.backward();
  for (int i = 0; i < 2; ++i) {
    const double hv = std::exp(x.cpu().at({i}));
    CHECK(x.grad().cpu().at({i}) == Approx((2 * hv + 1) * hv));
  }
}

TEST_CASE("autograd: retain_graph allows a second backward, otherwise it throws", "[autograd]") {
  const TD x = TD::from_vector({2.0}).set_requires_grad();
  const TD y = sum(x * x);
  y.backward({}, true);
  y.backward();
  CHECK(x.grad().item() == 8.0);
  CHECK_THROWS_WITH(y.backward(), Catch::Contains("already freed") && Catch::Contains("retain_graph"));
}

TEST_CASE("autograd: no-grad guard and detach record nothing", "[autograd]") {
  const TD x = TD::from_vector({1.0, 2.0}).set_requires_grad();
  {
    NoGradGuard guard;
    CHECK_FALSE(grad_enabled());
    const TD y = x * 2.0;
    CHECK_FALSE(y.requires_grad());
    CHECK(y.is_leaf());
    {
      NoGradGuard nested;
    }
    CHECK_FALSE(grad_enabled());
  }
  CHECK(grad_enabled());
  const TD d = x.detach();
  CHECK_FALSE(d.requires_grad());
  CHECK(d.shares_storage(x));
  const TD y = sum(d * x);  // gradient flows only through the second factor
  y.backward();
  CHECK(x.grad().to_vector() == std::vector<double>{1.0, 2.0});
}

TEST_CASE("autograd: a non-scalar root takes an explicit gradient", "[autograd]") {
  const TD x = TD::from_vector({1, 2, 3}).set_requires_grad();
  const TD y = x * 2.0;
  y.backward(TD::from_vector({1, 0, -1}));
  CHECK(x.grad().to_vector() == std::vector<double>{2, 0, -2});
}

TEST_CASE("autograd: backward on a leaf and through views", "[autograd]") {
  const TD x = TD::from_vector({1, 2, 3, 4}, {2, 2}).set_requires_grad();
  x.backward(TD::ones({2, 2}));
  CHECK(x.grad().to_vector() == std::vector<double>{1, 1, 1, 1});
  x.zero_grad();
  sum(x.t().slice(0, 1, 2) * 5.0).backward();  // picks column 1 of x
  CHECK(x.grad().to_vector() == std::vector<double>{0, 5, 0, 5});
}

TEST_CASE("autograd: deep graphs neither recurse nor overflow the stack", "[autograd]") {
  const TD x = TD::from_vector({1.0}).set_requires_grad();
  {
    TD y = x;
    for (int i = 0; i < 100000; ++i) y = y + 1e-6;
    y.backward();
    CHECK(x.grad().item() == 1.0);
  }  // y and its 100000-node chain are destroyed here, also without recursion
  TD y = x;
  for (int i = 0; i < 100000; ++i) y = y * 1.0;
  CHECK(y.requires_grad());
}

TEST_CASE("autograd: saved tensors are released after backward", "[autograd]") {
  Allocator& alloc = backends::of(Device::cpu()).allocator(0);
  Generator gen(3);
  const TD w = TD::randn({256, 256}, gen).set_requires_grad();
  TD loss;
  int64_t in_use_before = 0;
  {
    const TD a = tanh(matmul(w, w));  // saves a 512 KiB activation
    loss = sum(exp(a * 0.1));
    in_use_before = alloc.stats().bytes_in_use;
  }
  loss.backward();
  w.zero_grad();
  CHECK(alloc.stats().bytes_in_use <= in_use_before - 2 * 256 * 256 * 8);
}

TEST_CASE("autograd: frozen inputs get no gradient", "[autograd]") {
  Generator gen(4);
  const TD a = TD::randn({3, 3}, gen).set_requires_grad();
  const TD b = TD::randn({3, 3}, gen);
  sum(matmul(a, b)).backward();
  CHECK(a.grad().defined());
  CHECK_FALSE(b.grad().defined());
  CHECK_FALSE(b.requires_grad());
}
