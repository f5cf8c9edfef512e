// Shape: the extents of a tensor, plus the broadcasting and axis helpers every op needs.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <vector>

#include "siglite/core/error.hpp"

namespace siglite {

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) : dims_(dims) {}
  explicit Shape(std::vector<int64_t> dims) : dims_(std::move(dims)) {}

  size_t size() const { return dims_.size(); }
  int64_t operator[](size_t i) const { return dims_[i]; }
  int64_t& operator[](size_t i) { return dims_[i]; }
  auto begin() const { return dims_.begin(); }
  auto end() const { return dims_.end(); }
  const std::vector<int64_t>& vec() const { return dims_; }
  void push_back(int64_t d) { dims_.push_back(d); }
  void insert(size_t pos, int64_t d) { dims_.insert(dims_.begin() + static_cast<std::ptrdiff_t>(pos), d); }
  void erase(size_t pos) { dims_.erase(dims_.begin() + static_cast<std::ptrdiff_t>(pos)); }
  int64_t back() const { return dims_.back(); }

  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : dims_) n *= d;
    return n;
  }
  friend bool operator==(const Shape& a, const Shape& b) { return a.dims_ == b.dims_; }
  friend bool operator!=(const Shape& a, const Shape& b) { return a.dims_ != b.dims_; }
  friend std::ostream& operator<<(std::ostream& os, const Shape& s) {
    os << '[';
    for (size_t i = 0; i < s.size(); ++i) os << (i ? "," : "") << s[i];
    return os << ']';
  }

 private:
  std::vector<int64_t> dims_;
};

/// Row-major strides (in elements) of a contiguous tensor of this shape.
inline Shape contiguous_strides(const Shape& shape) {
  Shape strides(std::vector<int64_t>(shape.size(), 1));
  for (size_t i = shape.size(); i-- > 1;) strides[i - 1] = strides[i] * shape[i];
  return strides;
}

/// Maps a possibly negative axis into [0, ndim); throws naming `op` when out of range.
inline size_t normalize_axis(int64_t axis, size_t ndim, const char* op) {
  const auto n = static_cast<int64_t>(ndim);
  SIGLITE_CHECK(axis >= -n && axis < n, op, ": axis ", axis, " is out of range for a tensor of rank ", n);
  return static_cast<size_t>(axis < 0 ? axis + n : axis);
}

/// NumPy broadcasting of two shapes; throws naming `op` and both shapes when they do not broadcast.
inline Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(std::vector<int64_t>(n, 1));
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    SIGLITE_CHECK(da == db || da == 1 || db == 1, op, ": shapes ", a, " and ", b, " do not broadcast");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

}  // namespace siglite
