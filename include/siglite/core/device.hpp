// Device: where a tensor's storage lives, a run-time value so one program can run on any backend.
#pragma once
#include <array>
#include <atomic>
#include <cstddef>
#include <ostream>
#include <string>

#include "siglite/core/error.hpp"

namespace siglite {

/// The kinds of device a backend can serve. PrivateUse is for a backend that siglite does not ship (the test
/// suite's far device is one); it takes the name its backend registers.
enum class DeviceType { CPU, CUDA, PrivateUse };
constexpr size_t kDeviceTypes = 3;

/// The name of a device type in messages and in Device::str(); a backend's registration sets it.
inline std::string& device_type_name(DeviceType type) {
  static std::array<std::string, kDeviceTypes> names{"cpu", "cuda", "privateuse"};
  return names[static_cast<size_t>(type)];
}

class Device {
 public:
  constexpr Device() = default;
  constexpr Device(DeviceType type, int index) : type_(type), index_(index) {}
  static constexpr Device cpu() { return {DeviceType::CPU, 0}; }
  static constexpr Device cuda(int index = 0) { return {DeviceType::CUDA, index}; }
  /// "cpu", "cuda", "cuda:1", or a registered backend's name with an optional index ("far:0"). Whether the
  /// device is there is for its backend to say (backends::of).
  static Device parse(const std::string& text) {
    const size_t colon = text.find(':');
    const std::string name = text.substr(0, colon), number = colon == std::string::npos ? "0" : text.substr(colon + 1);
    SIGLITE_CHECK(!number.empty() && number.size() <= 4 && number.find_first_not_of("0123456789") == std::string::npos,
                  "device '", text, "': the index after ':' must be a number");
    for (size_t t = 0; t < kDeviceTypes; ++t)
      if (device_type_name(static_cast<DeviceType>(t)) == name) return {static_cast<DeviceType>(t), std::stoi(number)};
    throw Error(detail::cat("device '", text, "' is not one of cpu, cuda[:N] or a registered backend's name"));
  }

  constexpr DeviceType type() const { return type_; }
  constexpr int index() const { return index_; }
  constexpr bool is_cpu() const { return type_ == DeviceType::CPU; }
  constexpr bool is_cuda() const { return type_ == DeviceType::CUDA; }

  friend constexpr bool operator==(Device a, Device b) { return a.type_ == b.type_ && a.index_ == b.index_; }
  friend constexpr bool operator!=(Device a, Device b) { return !(a == b); }
  std::string str() const { return is_cpu() ? "cpu" : device_type_name(type_) + ":" + std::to_string(index_); }
  friend std::ostream& operator<<(std::ostream& os, Device d) { return os << d.str(); }

 private:
  DeviceType type_ = DeviceType::CPU;
  int index_ = 0;
};

namespace detail {
inline std::atomic<Device>& default_device_slot() {
  static std::atomic<Device> device{Device::cpu()};
  return device;
}
}  // namespace detail

/// Where factories (Tensor::empty, zeros, from_vector, randn, ...) and so layers' parameters put a tensor when
/// no device is named: the CPU until set_default_device names another. One setting for the process.
inline Device default_device() { return detail::default_device_slot().load(std::memory_order_relaxed); }
/// Makes `device` the default device (see default_device()); returns the one it replaces.
inline Device set_default_device(Device device) { return detail::default_device_slot().exchange(device); }

namespace detail {
/// The one check of an op's operands' devices: "matmul: operands on cpu and cuda:0; move one with .to()".
inline void check_same_device(Device a, Device b, const char* op) {
  SIGLITE_CHECK(a == b, op, ": operands on ", a, " and ", b, "; move one with .to()");
}
}  // namespace detail

}  // namespace siglite
