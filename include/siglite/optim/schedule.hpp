// Learning-rate schedules: functions of the step returning a multiplier of the base learning rate.
// They match the Hugging Face transformers schedules of the same names (get_cosine_schedule_with_warmup,
// get_linear_schedule_with_warmup, get_inverse_sqrt_schedule), so runs can be compared with PyTorch.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>

#include "siglite/core/error.hpp"

namespace siglite::optim {

/// Multiplier of the base learning rate at `step`: the number of optimizer steps taken before the
/// one it applies to (0 for the first update). An Optimizer with a schedule calls it once per step().
using Schedule = std::function<double(int64_t step)>;

namespace detail {
constexpr double kPi = 3.14159265358979323846;

inline void check_step(const char* name, int64_t step) {
  SIGLITE_CHECK(step >= 0, name, ": step must be >= 0, got ", step);
}
inline void check_warmup(const char* name, int64_t warmup, int64_t total) {
  SIGLITE_CHECK(warmup >= 0, name, ": warmup must be >= 0, got ", warmup);
  SIGLITE_CHECK(total > warmup, name, ": total (", total, ") must be greater than warmup (", warmup, ")");
}
/// Linear warmup from 0: step / warmup for step < warmup (the first update runs at lr 0, as in
/// big_vision and Hugging Face).
inline double warmup_ramp(int64_t step, int64_t warmup) {
  return static_cast<double>(step) / static_cast<double>(warmup);
}
}  // namespace detail

/// 1 at every step.
inline Schedule constant() {
  return [](int64_t step) {
    detail::check_step("constant", step);
    return 1.0;
  };
}

/// step / warmup while step < warmup; then with p = min(1, (step - warmup) / (total - warmup)):
/// final_fraction + (1 - final_fraction) * (1 + cos(pi * p)) / 2, so 1 at the end of warmup and
/// final_fraction from step `total` on.
inline Schedule warmup_cosine(int64_t warmup, int64_t total, double final_fraction = 0.0) {
  detail::check_warmup("warmup_cosine", warmup, total);
  SIGLITE_CHECK(final_fraction >= 0 && final_fraction <= 1, "warmup_cosine: final_fraction must be in [0, 1], got ",
                final_fraction);
  return [warmup, total, final_fraction](int64_t step) {
    detail::check_step("warmup_cosine", step);
    if (step < warmup) return detail::warmup_ramp(step, warmup);
    const double p = std::min(1.0, static_cast<double>(step - warmup) / static_cast<double>(total - warmup));
    return final_fraction + (1.0 - final_fraction) * 0.5 * (1.0 + std::cos(detail::kPi * p));
  };
}

/// step / warmup while step < warmup; then max(0, (total - step) / (total - warmup)): 1 at the end
/// of warmup, 0 from step `total` on.
inline Schedule linear(int64_t warmup, int64_t total) {
  detail::check_warmup("linear", warmup, total);
  return [warmup, total](int64_t step) {
    detail::check_step("linear", step);
    if (step < warmup) return detail::warmup_ramp(step, warmup);
    return std::max(0.0, static_cast<double>(total - step) / static_cast<double>(total - warmup));
  };
}

/// step / warmup while step < warmup; then 1 / sqrt(step / warmup): 1 at the end of warmup,
/// 1/2 at 4 * warmup. warmup must be >= 1 (it is also the time scale of the decay).
inline Schedule rsqrt(int64_t warmup) {
  SIGLITE_CHECK(warmup >= 1, "rsqrt: warmup must be >= 1 (it sets the decay's time scale), got ", warmup);
  return [warmup](int64_t step) {
    detail::check_step("rsqrt", step);
    if (step < warmup) return detail::warmup_ramp(step, warmup);
    return std::sqrt(static_cast<double>(warmup) / static_cast<double>(step));
  };
}

}  // namespace siglite::optim
