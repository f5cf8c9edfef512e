// Device: where a tensor's storage lives, a run-time value so one program can run on any backend.
#pragma once
#include <ostream>
#include <string>

namespace siglite {

enum class DeviceType { CPU, CUDA };

class Device {
 public:
  constexpr Device() = default;
  constexpr Device(DeviceType type, int index) : type_(type), index_(index) {}
  static constexpr Device cpu() { return {DeviceType::CPU, 0}; }
  static constexpr Device cuda(int index = 0) { return {DeviceType::CUDA, index}; }

  constexpr DeviceType type() const { return type_; }
  constexpr int index() const { return index_; }
  constexpr bool is_cpu() const { return type_ == DeviceType::CPU; }
  constexpr bool is_cuda() const { return type_ == DeviceType::CUDA; }

  friend constexpr bool operator==(Device a, Device b) { return a.type_ == b.type_ && a.index_ == b.index_; }
  friend constexpr bool operator!=(Device a, Device b) { return !(a == b); }
  std::string str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index_); }
  friend std::ostream& operator<<(std::ostream& os, Device d) { return os << d.str(); }

 private:
  DeviceType type_ = DeviceType::CPU;
  int index_ = 0;
};

}  // namespace siglite
