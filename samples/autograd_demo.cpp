// A two-layer MLP learns to tell a disc from the ring around it, trained with plain gradient
// descent on siglite's autograd: forward, loss, backward, update, with a progress line.
#include <cmath>
#include <cstdio>
#include <siglite/siglite.hpp>

using namespace siglite;

int main() {
  constexpr int64_t n = 512, hidden = 64, steps = 400;
  constexpr float lr = 0.5f;
  Generator gen(7);

  // Points in a disc of radius 0.5 (label 0) and in a ring from 0.7 to 1.0 around it (label 1).
  auto x = Tensor<float>::empty({n, 2});
  auto y = Tensor<float>::empty({n, 1});
  for (int64_t i = 0; i < n; ++i) {
    const bool outer = i % 2 == 1;
    const double r = outer ? 0.7 + 0.3 * gen.uniform() : 0.5 * std::sqrt(gen.uniform());
    const double a = 6.283185307179586 * gen.uniform();
    x.at({i, 0}) = static_cast<float>(r * std::cos(a));
    x.at({i, 1}) = static_cast<float>(r * std::sin(a));
    y.at({i, 0}) = outer ? 1.0f : 0.0f;
  }

  auto w1 = Tensor<float>::randn({2, hidden}, gen, 0.0f, 1.0f).set_requires_grad();
  auto b1 = Tensor<float>::zeros({hidden}).set_requires_grad();
  auto w2 = Tensor<float>::randn({hidden, 1}, gen, 0.0f, 1.0f / std::sqrt(float(hidden))).set_requires_grad();
  auto b2 = Tensor<float>::zeros({1}).set_requires_grad();

  for (int64_t step = 1; step <= steps; ++step) {
    const auto h = gelu(matmul(x, w1) + b1);
    const auto logits = matmul(h, w2) + b2;
    // Binary cross-entropy with logits: -(y log s(z) + (1 - y) log s(-z)), averaged.
    const auto loss = -mean(y * log_sigmoid(logits) + (1.0f - y) * log_sigmoid(-logits));
    loss.backward();
    {
      NoGradGuard no_grad;
      for (auto* p : {&w1, &b1, &w2, &b2}) {
        const auto updated = *p - p->grad() * lr;
        std::copy(updated.data(), updated.data() + updated.numel(), p->data());
        p->zero_grad();
      }
    }
    if (step % 50 == 0 || step == 1) {
      NoGradGuard no_grad;
      int64_t correct = 0;
      for (int64_t i = 0; i < n; ++i) correct += (logits.at({i, 0}) > 0) == (y.at({i, 0}) > 0.5f);
      std::printf("step %4lld/%lld  loss %.4f  accuracy %.3f\n", static_cast<long long>(step),
                  static_cast<long long>(steps), loss.item(), static_cast<double>(correct) / n);
    }
  }
  return 0;
}
