// Registers the CPU backend (backends/cpu/) for Device::cpu(); <siglite/siglite.hpp> includes it.
#pragma once
#include "siglite/backends/backend.hpp"
#include "siglite/backends/cpu/backend.hpp"

namespace siglite::cpu {

inline const bool registered = backends::register_backend(DeviceType::CPU, &backend());

}  // namespace siglite::cpu
