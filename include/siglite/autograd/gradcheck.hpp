// gradcheck: compares the gradients that backward() computes with central finite differences.
#pragma once
#include <cmath>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "siglite/core/tensor.hpp"
#include "siglite/ops/elementwise.hpp"
#include "siglite/ops/reduce.hpp"

namespace siglite {

struct GradcheckResult {
  bool ok = true;
  double max_abs_error = 0;  // largest |analytic - numeric| over all checked elements
  std::string message;       // the first mismatch, naming the input and element
};

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-5;
  double rtol = 1e-4;
  uint64_t seed = 1234;  // draws the random weights that project a non-scalar output to a scalar
};

/// Checks d f / d inputs at `inputs` (double precision leaves; those with requires_grad are
/// checked). The output is reduced to sum(f(x) * w) with fixed random w, so every output element
/// takes part. Runs on the inputs' device: each perturbation is one element copied there.
inline GradcheckResult gradcheck(const std::function<Tensor<double>(const std::vector<Tensor<double>>&)>& f,
                                 std::vector<Tensor<double>> inputs, const GradcheckOptions& opt = {}) {
  for (auto& x : inputs) {
    SIGLITE_CHECK(x.is_leaf(), "gradcheck: inputs must be leaf tensors");
    if (!x.is_contiguous()) x = x.clone().set_requires_grad(x.requires_grad());
    x.zero_grad();
  }
  Generator gen(opt.seed);
  const Tensor<double> y0 = f(inputs);
  const Tensor<double> w = Tensor<double>::randn(y0.shape(), gen, 0.0, 1.0, y0.device());
  const auto objective = [&](const Tensor<double>& y) {
    double s = 0;
    const std::vector<double> yv = y.to_vector(), wv = w.to_vector();
    for (size_t i = 0; i < yv.size(); ++i) s += yv[i] * wv[i];
    return s;
  };
  sum(y0 * w).backward();
  GradcheckResult result;
  NoGradGuard no_grad;
  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor<double>& x = inputs[k];
    if (!x.requires_grad()) continue;
    const std::vector<double> analytic =
        x.grad().defined() ? x.grad().to_vector() : std::vector<double>(static_cast<size_t>(x.numel()), 0.0);
    const std::vector<double> values = x.to_vector();
    const auto set = [&x](int64_t i, double v) {
      backends::copy_bytes(x.device(), x.device_ptr() + i, Device::cpu(), &v, sizeof v);
    };
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double orig = values[static_cast<size_t>(i)];
      set(i, orig + opt.eps);
      const double plus = objective(f(inputs));
      set(i, orig - opt.eps);
      const double minus = objective(f(inputs));
      set(i, orig);
      const double numeric = (plus - minus) / (2 * opt.eps);
      const double got = analytic[static_cast<size_t>(i)];
      const double err = std::abs(got - numeric);
      result.max_abs_error = std::max(result.max_abs_error, err);
      if (result.ok && !(err <= opt.atol + opt.rtol * std::abs(numeric))) {
        result.ok = false;
        std::ostringstream s;
        s << "gradcheck: input " << k << " (shape " << x.shape() << ") element " << i << ": analytic " << got
          << ", numeric " << numeric;
        result.message = s.str();
      }
    }
  }
  return result;
}

}  // namespace siglite
