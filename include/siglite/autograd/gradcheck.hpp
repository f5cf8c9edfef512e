// gradcheck: compares the gradients that backward() computes with finite differences.
#pragma once
#include <cmath>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "siglite/core/tensor.hpp"
#include "siglite/ops/elementwise.hpp"
#include "siglite/ops/reduce.hpp"

namespace siglite {

struct GradcheckResult {
  bool ok = true;
  double max_abs_error = 0;  // largest |analytic - numeric| over all checked elements
  double max_rel_error = 0;  // largest |analytic - numeric| / max(|numeric|, 1)
  std::string message;       // the first mismatch, naming the input and element
};

/// Step and tolerances; each one left unset takes the default of the inputs' type (gradcheck_defaults).
struct GradcheckOptions {
  std::optional<double> eps, atol, rtol;
  uint64_t seed = 1234;  // draws the random weights that project a non-scalar output to a scalar
};

namespace detail {
template <typename T>
struct Identity {
  using type = T;
};
}  // namespace detail

/// The defaults: in double a step of 2^-10, whose truncation error (h^4 f^(5) / 30) and rounding (1e-16 |f| / h)
/// both stay near 1e-12 for a smooth op of inputs near 1, and tolerances of 1e-10; in float a step of 2^-7, where
/// the objective's float rounding divided by h is near 1e-5, and tolerances of 5e-4. Powers of two, so that x + h
/// and x + 2h are exact for inputs of ordinary size. The op table's rows (test_ops.cpp) hold them with a margin of
/// five to ten or more.
template <typename T>
GradcheckOptions gradcheck_defaults() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "gradcheck: float or double");
  GradcheckOptions o;
  if (std::is_same_v<T, double>) {
    o.eps = std::ldexp(1.0, -10), o.atol = 1e-10, o.rtol = 1e-10;
  } else {
    o.eps = std::ldexp(1.0, -7), o.atol = 5e-4, o.rtol = 5e-4;
  }
  return o;
}

template <typename T>
using GradcheckFunction = std::function<Tensor<T>(const std::vector<Tensor<T>>&)>;

/// Checks d f / d inputs at `inputs` (leaves of float or double; those with requires_grad are checked). The output
/// is reduced to sum(f(x) * w) with fixed random w, so every output element takes part, and each derivative is
/// estimated by the fourth-order central difference (-f(x+2h) + 8 f(x+h) - 8 f(x-h) + f(x-2h)) / 12h, the
/// objective summed in double. Runs on the inputs' device: each perturbation is one element copied there. T comes
/// from `inputs` (f may be any callable); with a braced list of inputs, name it: gradcheck<double>(f, {x, y}).
template <typename T>
GradcheckResult gradcheck(const typename detail::Identity<GradcheckFunction<T>>::type& f,
                          std::vector<Tensor<T>> inputs, const GradcheckOptions& options = {}) {
  const GradcheckOptions defaults = gradcheck_defaults<T>();
  const double eps = options.eps.value_or(*defaults.eps), atol = options.atol.value_or(*defaults.atol),
               rtol = options.rtol.value_or(*defaults.rtol);
  SIGLITE_CHECK(eps > 0, "gradcheck: the step must be positive, not ", eps);
  for (auto& x : inputs) {
    SIGLITE_CHECK(x.is_leaf(), "gradcheck: inputs must be leaf tensors");
    if (!x.is_contiguous()) x = x.clone().set_requires_grad(x.requires_grad());
    x.zero_grad();
  }
  Generator gen(options.seed);
  const Tensor<T> y0 = f(inputs);
  const Tensor<T> w = Tensor<T>::randn(y0.shape(), gen, T(0), T(1), y0.device());
  const std::vector<T> wv = w.to_vector();
  const auto objective = [&](const Tensor<T>& y) {
    double s = 0;
    const std::vector<T> yv = y.to_vector();
    for (size_t i = 0; i < yv.size(); ++i) s += double(yv[i]) * double(wv[i]);
    return s;
  };
  sum(y0 * w).backward();
  GradcheckResult result;
  NoGradGuard no_grad;
  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor<T>& x = inputs[k];
    if (!x.requires_grad()) continue;
    const std::vector<T> analytic =
        x.grad().defined() ? x.grad().to_vector() : std::vector<T>(static_cast<size_t>(x.numel()), T(0));
    const std::vector<T> values = x.to_vector();
    const auto set = [&](int64_t i, double offset) {
      const T v = static_cast<T>(double(values[static_cast<size_t>(i)]) + offset);
      backends::copy_bytes(x.device(), x.device_ptr() + i, Device::cpu(), &v, sizeof v);
    };
    const auto at = [&](int64_t i, double offset) {
      set(i, offset);
      return objective(f(inputs));
    };
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double numeric =
          (-at(i, 2 * eps) + 8 * at(i, eps) - 8 * at(i, -eps) + at(i, -2 * eps)) / (12 * eps);
      set(i, 0);
      const double got = analytic[static_cast<size_t>(i)];
      const double err = std::abs(got - numeric);
      result.max_abs_error = std::max(result.max_abs_error, err);
      result.max_rel_error = std::max(result.max_rel_error, err / std::max(std::abs(numeric), 1.0));
      if (result.ok && !(err <= atol + rtol * std::abs(numeric))) {
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
