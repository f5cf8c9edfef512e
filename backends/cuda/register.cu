// The source the siglite::cuda CMake target adds to a program: nvcc compiles the CUDA backend here, once, and its
// inline variable registers the backend for Device::cuda() when the program starts.
#include "siglite/backends/cuda.cuh"
