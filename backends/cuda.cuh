// Registers the CUDA backend (backends/cuda/) for Device::cuda(i): include it in one translation unit compiled by
// nvcc, as the siglite::cuda CMake target does. Registered even where no GPU is found, so that `--device cuda`
// there is the one-line error "cuda has 0 device(s)" instead of an unknown device.
#pragma once
#include "siglite/backends/backend.hpp"
#include "siglite/backends/cuda/backend.cuh"

namespace siglite::cuda {

inline const bool registered = backends::register_backend(DeviceType::CUDA, &backend());

}  // namespace siglite::cuda
