// Uses the installed package: one gradient step of least squares, checked against its closed form.
#include <cmath>
#include <cstdio>
#include <siglite/siglite.hpp>

int main() {
  using siglite::Tensor;
  const auto x = Tensor<float>::from_vector({1, 2, 3, 4}, {2, 2});
  auto w = Tensor<float>::from_vector({0.5f, -1.0f}, {2, 1}).set_requires_grad();
  const auto loss = siglite::sum(siglite::pow(siglite::matmul(x, w), 2.0f));
  loss.backward();
  // d/dw sum((xw)^2) = 2 x^T (x w); x w = [-1.5, -2.5]
  const float expect0 = 2 * (1 * -1.5f + 3 * -2.5f), expect1 = 2 * (2 * -1.5f + 4 * -2.5f);
  const auto g = w.grad();
  if (std::abs(g.at({0, 0}) - expect0) > 1e-5f || std::abs(g.at({1, 0}) - expect1) > 1e-5f) {
    std::printf("consumer: wrong gradient %f %f\n", g.at({0, 0}), g.at({1, 0}));
    return 1;
  }
  std::printf("consumer: siglite package works (loss %.3f)\n", loss.item());
  return 0;
}
