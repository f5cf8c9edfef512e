// Philox4x32-10 (Salmon, Moraes, Dror and Shaw, "Parallel random numbers: as easy as 1, 2, 3", SC 2011), a
// counter-based generator, and the samples the random kernel makes from it. Block b of the stream of a key is a
// function of (key, b) alone, so every backend, and any split of the work among threads, draws the same numbers.
#pragma once
#include <cmath>
#include <cstdint>

#include "siglite/backends/kernels.hpp"

#ifdef __CUDACC__
#define SIGLITE_HOST_DEVICE __host__ __device__
#else
#define SIGLITE_HOST_DEVICE
#endif

namespace siglite::kernels::philox {

/// Ten rounds on the 128-bit counter c (overwritten with the block) under the key (k0, k1).
SIGLITE_HOST_DEVICE inline void rounds(uint32_t c[4], uint32_t k0, uint32_t k1) {
  for (int r = 0; r < 10; ++r) {
    const uint64_t p0 = uint64_t(0xD2511F53u) * c[0], p1 = uint64_t(0xCD9E8D57u) * c[2];
    const uint32_t n0 = uint32_t(p1 >> 32) ^ c[1] ^ k0, n2 = uint32_t(p0 >> 32) ^ c[3] ^ k1;
    c[0] = n0;
    c[1] = uint32_t(p1);
    c[2] = n2;
    c[3] = uint32_t(p0);
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
}

/// Values a block of four words makes: 4 of float (24 bits of a word each), 2 of double (53 bits of two words).
template <typename T>
constexpr int per_block = sizeof(T) == 4 ? 4 : 2;

/// Value j of a block as a uniform number in [0, 1): exact, and below 1.
template <typename T>
SIGLITE_HOST_DEVICE inline T unit(const uint32_t w[4], int j) {
  if constexpr (sizeof(T) == 4) {
    return T(w[j] >> 8) * T(0x1.0p-24);
  } else {
    return T(((uint64_t(w[2 * j]) << 32) | w[2 * j + 1]) >> 11) * T(0x1.0p-53);
  }
}

/// The per_block<T> values of block b of the stream of `key` under `dist` (see Kernels::random), into out.
/// Normal pairs values (0, 1) and (2, 3) by Box-Muller: r cos(2 pi u2) and r sin(2 pi u2), r = sqrt(-2 log(1 - u1)).
template <typename T>
SIGLITE_HOST_DEVICE inline void sample(Random dist, uint64_t key, uint64_t b, T p, T q, T* out) {
  uint32_t w[4] = {uint32_t(b), uint32_t(b >> 32), 0u, 0u};
  rounds(w, uint32_t(key), uint32_t(key >> 32));
  switch (dist) {
    case Random::Uniform:
      for (int j = 0; j < per_block<T>; ++j) out[j] = p + (q - p) * unit<T>(w, j);
      return;
    case Random::Bernoulli:
      for (int j = 0; j < per_block<T>; ++j) out[j] = unit<T>(w, j) < p ? q : T(0);
      return;
    case Random::Normal:
      for (int j = 0; j < per_block<T>; j += 2) {
        const T r = std::sqrt(T(-2) * std::log(T(1) - unit<T>(w, j)));
        const T theta = T(6.283185307179586476925286766559) * unit<T>(w, j + 1);
        out[j] = p + q * r * std::cos(theta);
        out[j + 1] = p + q * r * std::sin(theta);
      }
      return;
  }
}

}  // namespace siglite::kernels::philox
