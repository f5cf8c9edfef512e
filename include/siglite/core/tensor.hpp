// Tensor<T>: a shape, strides and offset over a shared Storage on a Device, plus the autograd
// state (requires_grad, grad, the node that made it). Copying a Tensor copies a handle.
#pragma once
#include <cmath>
#include <functional>
#include <iomanip>
#include <memory>
#include <ostream>
#include <string>
#include <type_traits>
#include <vector>

#include "siglite/backends/backend.hpp"
#include "siglite/core/allocator.hpp"
#include "siglite/core/device.hpp"
#include "siglite/core/error.hpp"
#include "siglite/core/generator.hpp"
#include "siglite/core/shape.hpp"
#include "siglite/fwd.hpp"

namespace siglite {

template <typename T>
struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Shape strides;
  int64_t offset = 0;
  bool requires_grad = false;
  std::shared_ptr<TensorImpl<T>> grad;  // accumulated gradient (leaves only)
  std::shared_ptr<Node<T>> grad_fn;     // the op that produced this tensor (null for leaves)

  /// The first element's address in the storage's device memory.
  T* device_ptr() const { return static_cast<T*>(storage->data()) + offset; }
};

template <typename T>
class Tensor {
  static_assert(std::is_arithmetic_v<T>, "Tensor<T> holds arithmetic types");

 public:
  using value_type = T;

  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl<T>> impl) : impl_(std::move(impl)) {}

  // ---- creation ----
  /// Uninitialised contiguous tensor.
  static Tensor empty(const Shape& shape, Device device = default_device()) {
    for (int64_t d : shape) SIGLITE_CHECK(d >= 0, "empty: negative extent in shape ", shape);
    auto impl = std::make_shared<TensorImpl<T>>();
    impl->storage = std::make_shared<Storage>(static_cast<size_t>(shape.numel()) * sizeof(T), device);
    impl->shape = shape;
    impl->strides = contiguous_strides(shape);
    return Tensor(std::move(impl));
  }
  static Tensor full(const Shape& shape, T value, Device device = default_device()) {
    Tensor t = empty(shape, device);
    kernels::on<T>(device).fill(t.device_ptr(), t.numel(), value);
    return t;
  }
  static Tensor zeros(const Shape& shape, Device device = default_device()) { return full(shape, T(0), device); }
  static Tensor ones(const Shape& shape, Device device = default_device()) { return full(shape, T(1), device); }
  static Tensor scalar(T value, Device device = default_device()) { return full(Shape{}, value, device); }
  /// [start, start+step, ...) up to end (exclusive).
  static Tensor arange(T start, T end, T step = T(1), Device device = default_device()) {
    SIGLITE_CHECK(step != T(0), "arange: step is zero");
    const double count = std::ceil((static_cast<double>(end) - static_cast<double>(start)) / static_cast<double>(step));
    Tensor t = empty(Shape{count > 0 ? static_cast<int64_t>(count) : 0}, device);
    kernels::on<T>(device).arange(t.device_ptr(), t.numel(), start, step);
    return t;
  }
  static Tensor arange(T end, Device device = default_device()) { return arange(T(0), end, T(1), device); }
  /// The values, row-major, as a tensor of `shape` on `device` (one copy from the host).
  static Tensor from_vector(const std::vector<T>& values, const Shape& shape, Device device = default_device()) {
    SIGLITE_CHECK(static_cast<int64_t>(values.size()) == shape.numel(), "from_vector: ", values.size(),
                  " values do not fill shape ", shape);
    Tensor t = empty(shape, device);
    backends::copy_bytes(device, t.device_ptr(), Device::cpu(), values.data(), values.size() * sizeof(T));
    return t;
  }
  static Tensor from_vector(const std::vector<T>& values, Device device = default_device()) {
    return from_vector(values, Shape{static_cast<int64_t>(values.size())}, device);
  }
  /// Normal(mean, std) samples, made on `device` from one 64-bit key drawn from `gen` (Kernels::random).
  static Tensor randn(const Shape& shape, Generator& gen, T mean = T(0), T std = T(1),
                      Device device = default_device()) {
    return random(kernels::Random::Normal, shape, gen, mean, std, device);
  }
  /// Uniform samples in [lo, hi), made on `device` from one 64-bit key drawn from `gen`.
  static Tensor uniform(const Shape& shape, Generator& gen, T lo = T(0), T hi = T(1), Device device = default_device()) {
    return random(kernels::Random::Uniform, shape, gen, lo, hi, device);
  }
  /// `value` with probability p and 0 otherwise, elementwise, made on `device` from one 64-bit key drawn from `gen`.
  static Tensor bernoulli(const Shape& shape, Generator& gen, T p, T value = T(1), Device device = default_device()) {
    SIGLITE_CHECK(p >= T(0) && p <= T(1), "bernoulli: probability ", p, " is outside [0, 1]");
    return random(kernels::Random::Bernoulli, shape, gen, p, value, device);
  }

  // ---- metadata ----
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  int64_t size(int64_t axis) const { return shape()[normalize_axis(axis, dim(), "size")]; }
  const Shape& strides() const { return impl().strides; }
  int64_t offset() const { return impl().offset; }
  size_t dim() const { return shape().size(); }
  int64_t numel() const { return shape().numel(); }
  Device device() const { return impl().storage->device(); }
  bool is_contiguous() const {
    int64_t expect = 1;
    for (size_t i = dim(); i-- > 0;) {
      if (shape()[i] != 1 && strides()[i] != expect) return false;
      expect *= shape()[i];
    }
    return true;
  }
  bool shares_storage(const Tensor& o) const { return impl().storage == o.impl().storage; }

  /// Host pointer to the first element (of the view), for tensors on the CPU; any other device's memory is
  /// reached with to(Device::cpu()), item() or to_vector().
  T* data() const {
    SIGLITE_CHECK(device().is_cpu(), "data: the tensor of shape ", shape(), " is on ", device(),
                  ", whose memory the host cannot read; copy it with to(Device::cpu()), item() or to_vector()");
    return impl().device_ptr();
  }
  /// Pointer to the first element in the device's memory, for kernels (never dereferenced on the host).
  T* device_ptr() const { return impl().device_ptr(); }
  /// The elements as kernels see them: device pointer, shape and strides.
  kernels::View<const T> view() const { return {device_ptr(), shape(), strides()}; }
  kernels::View<T> mutable_view() const { return {device_ptr(), shape(), strides()}; }

  /// Element access on CPU tensors, bounds-checked.
  T& at(std::initializer_list<int64_t> index) const {
    SIGLITE_CHECK(device().is_cpu(), "at: tensor is on ", device(), "; move it to the CPU first");
    SIGLITE_CHECK(index.size() == dim(), "at: ", index.size(), " indices for a tensor of shape ", shape());
    int64_t off = 0;
    size_t i = 0;
    for (int64_t v : index) {
      SIGLITE_CHECK(v >= 0 && v < shape()[i], "at: index ", v, " out of range for axis ", i, " of shape ", shape());
      off += v * strides()[i++];
    }
    return data()[off];
  }
  /// The one element, copied to the host.
  T item() const {
    SIGLITE_CHECK(numel() == 1, "item: tensor of shape ", shape(), " has ", numel(), " elements, not one");
    T v;
    backends::copy_bytes(Device::cpu(), &v, device(), device_ptr(), sizeof(T));
    return v;
  }
  /// The elements in row-major order, copied to the host.
  std::vector<T> to_vector() const {
    const Tensor c = detach().contiguous();
    std::vector<T> v(static_cast<size_t>(c.numel()));
    backends::copy_bytes(Device::cpu(), v.data(), c.device(), c.device_ptr(), v.size() * sizeof(T));
    return v;
  }

  /// A contiguous copy on `device`, or the tensor itself when it is there already. Differentiable: the gradient
  /// flows back to this tensor's device.
  Tensor to(Device device) const { return siglite::to(*this, device); }
  /// to(Device::cpu()): the tensor itself when it is on the host already, else a copy there.
  Tensor cpu() const { return to(Device::cpu()); }

  // ---- views (differentiable; share storage) ----
  Tensor reshape(const Shape& s) const { return siglite::reshape(*this, s); }
  Tensor permute(const std::vector<int64_t>& dims) const { return siglite::permute(*this, dims); }
  Tensor transpose(int64_t a, int64_t b) const { return siglite::transpose(*this, a, b); }
  /// Swaps the last two axes.
  Tensor t() const { return siglite::transpose(*this, -2, -1); }
  Tensor slice(int64_t axis, int64_t start, int64_t end, int64_t step = 1) const {
    return siglite::slice(*this, axis, start, end, step);
  }
  Tensor expand(const Shape& s) const { return siglite::expand(*this, s); }
  Tensor unsqueeze(int64_t axis) const {
    const size_t a = normalize_axis(axis, dim() + 1, "unsqueeze");
    Shape s = shape();
    s.insert(a, 1);
    return reshape(s);
  }
  Tensor squeeze(int64_t axis) const {
    const size_t a = normalize_axis(axis, dim(), "squeeze");
    SIGLITE_CHECK(shape()[a] == 1, "squeeze: axis ", axis, " of shape ", shape(), " is not 1");
    Shape s = shape();
    s.erase(a);
    return reshape(s);
  }
  /// This tensor when contiguous, else a contiguous copy (differentiable).
  Tensor contiguous() const { return siglite::contiguous(*this); }
  /// A contiguous copy that shares nothing with this tensor and records no history.
  Tensor clone() const {
    Tensor out = empty(shape(), device());
    kernels::on<T>(device()).copy(view(), out.mutable_view());
    return out;
  }

  // ---- autograd ----
  bool requires_grad() const { return impl().requires_grad; }
  /// Marks a leaf as needing gradients (only floating-point leaves can).
  Tensor& set_requires_grad(bool on = true) {
    SIGLITE_CHECK(std::is_floating_point_v<T>, "set_requires_grad: only floating-point tensors take gradients");
    SIGLITE_CHECK(is_leaf(), "set_requires_grad: only leaf tensors can change requires_grad; use detach()");
    impl().requires_grad = on;
    return *this;
  }
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  const std::shared_ptr<Node<T>>& grad_fn() const { return impl().grad_fn; }
  /// The accumulated gradient, undefined until backward reached this leaf.
  Tensor grad() const { return Tensor(impl().grad); }
  void zero_grad() const { impl().grad.reset(); }
  /// Same data, no history, requires no grad.
  Tensor detach() const {
    auto impl = std::make_shared<TensorImpl<T>>();
    impl->storage = impl_->storage;
    impl->shape = impl_->shape;
    impl->strides = impl_->strides;
    impl->offset = impl_->offset;
    return Tensor(std::move(impl));
  }
  /// Backpropagates from this tensor. A non-scalar root needs `grad` of its shape.
  void backward(const Tensor& grad = {}, bool retain_graph = false) const {
    siglite::backward(*this, grad, retain_graph);
  }

  TensorImpl<T>& impl() const {
    SIGLITE_CHECK(impl_ != nullptr, "Tensor: use of an undefined tensor");
    return *impl_;
  }
  const std::shared_ptr<TensorImpl<T>>& impl_ptr() const { return impl_; }

 private:
  static Tensor random(kernels::Random dist, const Shape& shape, Generator& gen, T p, T q, Device device) {
    Tensor t = empty(shape, device);
    kernels::on<T>(device).random(dist, t.device_ptr(), t.numel(), gen.next_u64(), p, q);
    return t;
  }
  std::shared_ptr<TensorImpl<T>> impl_;
};

template <typename T>
std::ostream& operator<<(std::ostream& os, const Tensor<T>& t) {
  if (!t.defined()) return os << "Tensor(undefined)";
  os << "Tensor" << t.shape() << ' ' << t.device() << (t.requires_grad() ? " requires_grad" : "") << '\n';
  const std::vector<T> v = t.to_vector();
  const int64_t cols = t.dim() ? t.shape().back() : 1;
  const int64_t limit = 64;
  for (int64_t i = 0; i < static_cast<int64_t>(v.size()) && i < limit; ++i) {
    os << std::setw(11) << std::setprecision(5) << v[static_cast<size_t>(i)];
    os << ((i + 1) % cols == 0 ? "\n" : " ");
  }
  if (static_cast<int64_t>(v.size()) > limit) os << "... (" << v.size() << " elements)\n";
  return os;
}

}  // namespace siglite
