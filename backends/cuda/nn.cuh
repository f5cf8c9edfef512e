// CUDA kernels of the network layers (the GPU side of backends/cpu/nn.hpp): softmax, layer norm, gather/scatter-add,
// patch extraction. Row kernels give each row one warp (short rows) or one block (long rows) and reduce with warp
// shuffles and a fixed-order pass over shared memory; column sums (layer-norm gw, gb) go through per-chunk partials
// in a Workspace and a second fixed-order pass; scatter_add sorts (index, position) pairs with CUB's stable radix
// sort so that one thread owns each (destination row, column) and adds its sources in position order. Every result
// is a pure function of the inputs: no floating-point atomics.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <cub/cub.cuh>
#include <type_traits>

#include "siglite/backends/cuda/allocator.cuh"
#include "siglite/backends/cuda/common.cuh"

namespace siglite::cuda {

namespace nn_detail {

__device__ __forceinline__ float exp_(float x) { return expf(x); }
__device__ __forceinline__ double exp_(double x) { return ::exp(x); }
__device__ __forceinline__ float log_(float x) { return logf(x); }
__device__ __forceinline__ double log_(double x) { return ::log(x); }
__device__ __forceinline__ float sqrt_(float x) { return sqrtf(x); }
__device__ __forceinline__ double sqrt_(double x) { return ::sqrt(x); }

/// std::max(acc, v) as the CPU writes it: a NaN v never replaces acc, so a NaN only survives as the initial value.
struct MaxOp {
  template <typename T>
  __device__ __forceinline__ T operator()(T acc, T v) const {
    return acc < v ? v : acc;
  }
};
struct SumOp {
  template <typename T>
  __device__ __forceinline__ T operator()(T a, T b) const {
    return a + b;
  }
};

/// The launch shape of the row kernels: kWarps warps per row, kRows rows per block (a 256-thread block for short
/// rows, then 256 or 1024 threads on one row).
template <int kWarps>
struct RowShape {
  static constexpr int kThreadsPerRow = 32 * kWarps;
  static constexpr int kRows = kWarps >= 8 ? 1 : 8 / kWarps;
  static constexpr int kThreads = kThreadsPerRow * kRows;
};

/// Calls launch(std::integral_constant<int, W>) with the warps per row W that suits rows of `cols` elements.
template <typename F>
void with_row_warps(int64_t cols, F&& launch) {
  if (cols <= 1024) launch(std::integral_constant<int, 1>());
  else if (cols <= 8192) launch(std::integral_constant<int, 8>());
  else launch(std::integral_constant<int, 32>());
}

template <int kWarps>
unsigned row_grid(int64_t rows) {
  const int64_t b = (rows + RowShape<kWarps>::kRows - 1) / RowShape<kWarps>::kRows;
  return static_cast<unsigned>(b < 1 ? 1 : (b > (int64_t(1) << 20) ? (int64_t(1) << 20) : b));
}

/// Reduces v over the threads of one row (threadIdx.x of the block, threadIdx.y naming the row) and gives every
/// one of them the same result: a butterfly of warp shuffles, then, for a row of several warps, each thread folding
/// the warps' results in warp order from `smem` (kWarps slots of this row). Uniform control flow per row required.
template <int kWarps, typename T, typename Op>
__device__ __forceinline__ T row_allreduce(T v, Op op, T* smem) {
#pragma unroll
  for (int offset = 16; offset > 0; offset >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, offset));
  if constexpr (kWarps > 1) {
    __syncthreads();  // every thread has read the slots of the previous reduction
    if ((threadIdx.x & 31) == 0) smem[threadIdx.x / 32] = v;
    __syncthreads();
    v = smem[0];
#pragma unroll
    for (int w = 1; w < kWarps; ++w) v = op(v, smem[w]);
  }
  return v;
}

/// A grid-stride loop over the rows of this thread's row slot (threadIdx.y of blockIdx.x), inside a row kernel of
/// kWarps warps per row; every thread of a row runs the same iterations.
#define SIGLITE_NN_FOR_EACH_ROW(r, rows)                                                                 \
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * RowShape<kWarps>::kRows + threadIdx.y; r < (rows); \
       r += static_cast<int64_t>(gridDim.x) * RowShape<kWarps>::kRows)

template <int kWarps, typename T>
__global__ void __launch_bounds__(RowShape<kWarps>::kThreads)
    softmax_kernel(const T* x, T* y, int64_t rows, int64_t cols, bool log) {
  using Shape = RowShape<kWarps>;
  __shared__ T smem[Shape::kRows][kWarps];
  const int64_t first = threadIdx.x, step = Shape::kThreadsPerRow;
  const T kNegInf = -infinity<T>();
  SIGLITE_NN_FOR_EACH_ROW(r, rows) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    T mx = kNegInf;
    for (int64_t c = first; c < cols; c += step) mx = MaxOp()(mx, xr[c]);
    mx = row_allreduce<kWarps>(mx, MaxOp(), smem[threadIdx.y]);
    if (mx == kNegInf) {  // a fully masked row: softmax zeros, log-softmax log(0)
      for (int64_t c = first; c < cols; c += step) yr[c] = log ? kNegInf : T(0);
      continue;
    }
    T sum = 0;
    for (int64_t c = first; c < cols; c += step) {
      const T ev = exp_(xr[c] - mx);
      sum += ev;
      if (!log) yr[c] = ev;
    }
    sum = row_allreduce<kWarps>(sum, SumOp(), smem[threadIdx.y]);
    if (log) {
      // (x - max) - log(sum), as the CPU: never x - (max + log(sum)).
      const T log_sum = log_(sum);
      for (int64_t c = first; c < cols; c += step) yr[c] = (xr[c] - mx) - log_sum;
    } else {
      const T inv = T(1) / sum;
      for (int64_t c = first; c < cols; c += step) yr[c] *= inv;
    }
  }
}

template <int kWarps, typename T>
__global__ void __launch_bounds__(RowShape<kWarps>::kThreads)
    softmax_backward_kernel(const T* y, const T* gy, T* gx, int64_t rows, int64_t cols, bool log) {
  using Shape = RowShape<kWarps>;
  __shared__ T smem[Shape::kRows][kWarps];
  const int64_t first = threadIdx.x, step = Shape::kThreadsPerRow;
  SIGLITE_NN_FOR_EACH_ROW(r, rows) {
    const T* yr = y + r * cols;
    const T* gr = gy + r * cols;
    T* out = gx + r * cols;
    T dot = 0;
    if (log) {
      // The CPU's test, *std::max_element(y) == -inf: its running maximum starts at y[0] and is only replaced by
      // a larger element, so a NaN y[0] stays.
      T mx = yr[0];
      for (int64_t c = first; c < cols; c += step) mx = MaxOp()(mx, yr[c]);
      mx = row_allreduce<kWarps>(mx, MaxOp(), smem[threadIdx.y]);
      if (mx == -infinity<T>()) {
        for (int64_t c = first; c < cols; c += step) out[c] = T(0);  // a fully masked row passes no gradient
        continue;
      }
      for (int64_t c = first; c < cols; c += step) dot += gr[c];
      dot = row_allreduce<kWarps>(dot, SumOp(), smem[threadIdx.y]);
      for (int64_t c = first; c < cols; c += step) out[c] = gr[c] - exp_(yr[c]) * dot;
    } else {
      for (int64_t c = first; c < cols; c += step) dot += gr[c] * yr[c];
      dot = row_allreduce<kWarps>(dot, SumOp(), smem[threadIdx.y]);
      for (int64_t c = first; c < cols; c += step) out[c] = yr[c] * (gr[c] - dot);
    }
  }
}

template <int kWarps, typename T>
__global__ void __launch_bounds__(RowShape<kWarps>::kThreads)
    layer_norm_kernel(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, int64_t rows, int64_t cols, T eps) {
  using Shape = RowShape<kWarps>;
  __shared__ T smem[Shape::kRows][kWarps];
  const int64_t first = threadIdx.x, step = Shape::kThreadsPerRow;
  SIGLITE_NN_FOR_EACH_ROW(r, rows) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    T s = 0;
    for (int64_t c = first; c < cols; c += step) s += xr[c];
    const T m = row_allreduce<kWarps>(s, SumOp(), smem[threadIdx.y]) / static_cast<T>(cols);
    T q = 0;
    for (int64_t c = first; c < cols; c += step) {
      const T h = xr[c] - m;
      q += h * h;
    }
    q = row_allreduce<kWarps>(q, SumOp(), smem[threadIdx.y]);
    const T rs = T(1) / sqrt_(q / static_cast<T>(cols) + eps);
    if (threadIdx.x == 0) {
      mean[r] = m;
      rstd[r] = rs;
    }
    for (int64_t c = first; c < cols; c += step) {
      const T hn = (xr[c] - m) * rs;
      if (w && b) yr[c] = hn * w[c] + b[c];
      else if (w) yr[c] = hn * w[c];
      else if (b) yr[c] = hn + b[c];
      else yr[c] = hn;
    }
  }
}

/// gx of layer norm, one row at a time: rstd * (d - mean(d) - h * mean(d * h)) with h the normalised x and d = gy * w
/// (or gy).
template <int kWarps, typename T>
__global__ void __launch_bounds__(RowShape<kWarps>::kThreads)
    layer_norm_backward_kernel(const T* x, const T* w, const T* mean, const T* rstd, const T* gy, T* gx, int64_t rows,
                               int64_t cols) {
  using Shape = RowShape<kWarps>;
  __shared__ T smem[Shape::kRows][kWarps];
  const int64_t first = threadIdx.x, step = Shape::kThreadsPerRow;
  SIGLITE_NN_FOR_EACH_ROW(r, rows) {
    const T* xr = x + r * cols;
    const T* gr = gy + r * cols;
    T* out = gx + r * cols;
    const T m = mean[r], rs = rstd[r];
    T sd = 0, sdh = 0;
    for (int64_t c = first; c < cols; c += step) {
      const T h = (xr[c] - m) * rs;
      const T d = w ? gr[c] * w[c] : gr[c];
      sd += d;
      sdh += d * h;
    }
    const T mean_d = row_allreduce<kWarps>(sd, SumOp(), smem[threadIdx.y]) / static_cast<T>(cols);
    const T mean_dh = row_allreduce<kWarps>(sdh, SumOp(), smem[threadIdx.y]) / static_cast<T>(cols);
    for (int64_t c = first; c < cols; c += step) {
      const T h = (xr[c] - m) * rs;
      const T d = w ? gr[c] * w[c] : gr[c];
      out[c] = rs * (d - mean_d - h * mean_dh);
    }
  }
}

#undef SIGLITE_NN_FOR_EACH_ROW

/// Columns per block and row lanes per block of the layer-norm column sums.
constexpr int kColTile = 32, kColLanes = 8;

/// Rows [chunk * chunk_rows, +chunk_rows) of gy * h (pw) and gy (pb) summed per column into
/// pw[chunk * cols + c], pb[...]: each of 8 lanes sums every 8th row in order, then the lanes are added in order.
template <typename T>
__global__ void layer_norm_column_partials_kernel(const T* x, const T* mean, const T* rstd, const T* gy, T* pw, T* pb,
                                                  int64_t rows, int64_t cols, int64_t chunk_rows) {
  __shared__ T sw[kColLanes][kColTile], sb[kColLanes][kColTile];
  const int64_t c = static_cast<int64_t>(blockIdx.x) * kColTile + threadIdx.x;
  const int64_t begin = static_cast<int64_t>(blockIdx.y) * chunk_rows;
  const int64_t end = begin + chunk_rows < rows ? begin + chunk_rows : rows;
  T aw = 0, ab = 0;
  if (c < cols)
    for (int64_t r = begin + threadIdx.y; r < end; r += kColLanes) {
      const T g = gy[r * cols + c];
      if (pw) aw += g * ((x[r * cols + c] - mean[r]) * rstd[r]);
      ab += g;
    }
  sw[threadIdx.y][threadIdx.x] = aw;
  sb[threadIdx.y][threadIdx.x] = ab;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    T tw = sw[0][threadIdx.x], tb = sb[0][threadIdx.x];
#pragma unroll
    for (int k = 1; k < kColLanes; ++k) {
      tw += sw[k][threadIdx.x];
      tb += sb[k][threadIdx.x];
    }
    if (pw) pw[blockIdx.y * cols + c] = tw;
    pb[blockIdx.y * cols + c] = tb;
  }
}

/// gw[c], gb[c] (where not null) = the chunks' partial sums of column c, added in chunk order (zeros for no chunk).
template <typename T>
__global__ void layer_norm_column_totals_kernel(const T* pw, const T* pb, T* gw, T* gb, int64_t chunks, int64_t cols) {
  for (int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < cols;
       c += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    T tw = 0, tb = 0;
    for (int64_t k = 0; k < chunks; ++k) {
      if (gw) tw += pw[k * cols + c];
      tb += pb[k * cols + c];
    }
    if (gw) gw[c] = tw;
    if (gb) gb[c] = tb;
  }
}

/// out[o, i, :] = x[o, idx[i], :], one thread per output element; a bad index is reported once per position (by its
/// o = 0, column 0 thread) and gives zeros. When out has no elements (outer or inner 0), the launch has one thread per
/// index that only checks it (check_only).
template <typename T>
__global__ void gather_kernel(const T* x, const int64_t* idx, T* out, int64_t outer, int64_t n_src, int64_t n_idx,
                              int64_t inner, bool check_only, Fault* fault, int op) {
  const int64_t total = check_only ? n_idx : outer * n_idx * inner;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < total;
       j += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = check_only ? 0 : j % inner, t = check_only ? j : j / inner;
    const int64_t i = t % n_idx, o = t / n_idx;
    const int64_t k = idx[i];
    const bool ok = k >= 0 && k < n_src;
    if (!ok && o == 0 && c == 0) report_fault(fault, op, k, i, n_src);
    if (!check_only) out[j] = ok ? x[(o * n_src + k) * inner + c] : T(0);
  }
}

/// The sort keys of scatter_add: idx[i], or n_src for an index outside [0, n_src) (sorted last and skipped), and
/// the positions 0..n_idx-1. (A template, Key = uint64_t, so that every translation unit may define it.)
template <typename Key>
__global__ void scatter_keys_kernel(const int64_t* idx, int64_t n_idx, int64_t n_src, Key* keys, int64_t* positions) {
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n_idx;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t k = idx[i];
    keys[i] = static_cast<Key>(k >= 0 && k < n_src ? k : n_src);
    positions[i] = i;
  }
}

/// One thread per (o, sorted slot s, column c); the thread at the first slot of a run of equal keys owns
/// gx[o, key, c] and adds the run's rows of g to it in position order (the stable sort kept them in that order).
template <typename T>
__global__ void scatter_add_kernel(const T* g, const uint64_t* keys, const int64_t* positions, T* gx, int64_t outer,
                                   int64_t n_src, int64_t n_idx, int64_t inner) {
  const int64_t total = outer * n_idx * inner;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < total;
       j += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t c = j % inner, t = j / inner;
    const int64_t s = t % n_idx, o = t / n_idx;
    const uint64_t key = keys[s];
    if (key >= static_cast<uint64_t>(n_src) || (s > 0 && keys[s - 1] == key)) continue;
    T* dst = gx + (o * n_src + static_cast<int64_t>(key)) * inner + c;
    const T* src = g + o * n_idx * inner + c;
    T acc = *dst;
    for (int64_t e = s; e < n_idx && keys[e] == key; ++e) acc += src[positions[e] * inner];
    *dst = acc;
  }
}

/// One thread per patch element, (img, py, px, ch, ky, kx) in the patches' order; copies it one way or the other.
template <typename T>
__global__ void patchify_kernel(T* images, T* patches, int64_t n, int64_t c, int64_t h, int64_t w, int64_t p,
                                bool to_images) {
  const int64_t gh = h / p, gw = w / p;
  const int64_t total = n * gh * gw * c * p * p;
  for (int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; j < total;
       j += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    int64_t t = j;
    const int64_t kx = t % p;
    t /= p;
    const int64_t ky = t % p;
    t /= p;
    const int64_t ch = t % c;
    t /= c;
    const int64_t px = t % gw;
    t /= gw;
    const int64_t py = t % gh;
    const int64_t img = t / gh;
    const int64_t pix = ((img * c + ch) * h + py * p + ky) * w + px * p + kx;
    if (to_images) images[pix] = patches[j];
    else patches[j] = images[pix];
  }
}

}  // namespace nn_detail

template <typename T>
void softmax(const T* x, T* y, int64_t rows, int64_t cols, bool log) {
  if (rows <= 0 || cols <= 0) return;
  nn_detail::with_row_warps(cols, [&](auto warps) {
    constexpr int W = decltype(warps)::value;
    const dim3 block(nn_detail::RowShape<W>::kThreadsPerRow, nn_detail::RowShape<W>::kRows);
    nn_detail::softmax_kernel<W, T><<<nn_detail::row_grid<W>(rows), block, 0, stream()>>>(x, y, rows, cols, log);
    SIGLITE_CUDA_LAUNCHED();
  });
}

template <typename T>
void softmax_backward(const T* y, const T* gy, T* gx, int64_t rows, int64_t cols, bool log) {
  if (rows <= 0 || cols <= 0) return;
  nn_detail::with_row_warps(cols, [&](auto warps) {
    constexpr int W = decltype(warps)::value;
    const dim3 block(nn_detail::RowShape<W>::kThreadsPerRow, nn_detail::RowShape<W>::kRows);
    nn_detail::softmax_backward_kernel<W, T>
        <<<nn_detail::row_grid<W>(rows), block, 0, stream()>>>(y, gy, gx, rows, cols, log);
    SIGLITE_CUDA_LAUNCHED();
  });
}

template <typename T>
void layer_norm(const T* x, const T* w, const T* b, T* y, T* mean, T* rstd, int64_t rows, int64_t cols, T eps) {
  if (rows <= 0) return;
  nn_detail::with_row_warps(cols, [&](auto warps) {
    constexpr int W = decltype(warps)::value;
    const dim3 block(nn_detail::RowShape<W>::kThreadsPerRow, nn_detail::RowShape<W>::kRows);
    nn_detail::layer_norm_kernel<W, T>
        <<<nn_detail::row_grid<W>(rows), block, 0, stream()>>>(x, w, b, y, mean, rstd, rows, cols, eps);
    SIGLITE_CUDA_LAUNCHED();
  });
}

/// gw and gb are summed over the rows in chunks of a size that depends on `rows` only (partials in a Workspace, then
/// added in chunk order), before gx is written, so gx may even share gy's buffer.
template <typename T>
void layer_norm_backward(const T* x, const T* w, const T* mean, const T* rstd, const T* gy, T* gx, T* gw, T* gb,
                         int64_t rows, int64_t cols) {
  if (cols <= 0) return;
  const cudaStream_t s = stream();
  if (gw || gb) {
    // At most 256 chunks of at least 32 rows: enough blocks to fill the GPU, short serial sums per thread.
    constexpr int64_t kMaxChunks = 256, kMinChunkRows = 32;
    int64_t chunk_rows = (rows + kMaxChunks - 1) / kMaxChunks;
    if (chunk_rows < kMinChunkRows) chunk_rows = kMinChunkRows;
    const int64_t chunks = rows > 0 ? (rows + chunk_rows - 1) / chunk_rows : 0;
    Workspace<T> partials(2 * chunks * cols);
    T* pw = gw ? partials.get() : nullptr;
    T* pb = partials.get() + chunks * cols;
    if (chunks > 0) {
      const dim3 grid(static_cast<unsigned>((cols + nn_detail::kColTile - 1) / nn_detail::kColTile),
                      static_cast<unsigned>(chunks));
      const dim3 block(nn_detail::kColTile, nn_detail::kColLanes);
      nn_detail::layer_norm_column_partials_kernel<T>
          <<<grid, block, 0, s>>>(x, mean, rstd, gy, pw, pb, rows, cols, chunk_rows);
      SIGLITE_CUDA_LAUNCHED();
    }
    nn_detail::layer_norm_column_totals_kernel<T><<<blocks_for(cols), kThreads, 0, s>>>(pw, pb, gw, gb, chunks, cols);
    SIGLITE_CUDA_LAUNCHED();
  }
  if (gx && rows > 0) {
    nn_detail::with_row_warps(cols, [&](auto warps) {
      constexpr int W = decltype(warps)::value;
      const dim3 block(nn_detail::RowShape<W>::kThreadsPerRow, nn_detail::RowShape<W>::kRows);
      nn_detail::layer_norm_backward_kernel<W, T>
          <<<nn_detail::row_grid<W>(rows), block, 0, s>>>(x, w, mean, rstd, gy, gx, rows, cols);
      SIGLITE_CUDA_LAUNCHED();
    });
  }
}

/// A bad index is reported to the device's fault slot and raised by the next host synchronisation.
template <typename T>
void gather(const char* op, const T* x, const int64_t* idx, T* out, int64_t outer, int64_t n_src, int64_t n_idx,
            int64_t inner) {
  if (n_idx <= 0) return;
  const bool check_only = outer <= 0 || inner <= 0;
  const int64_t total = check_only ? n_idx : outer * n_idx * inner;
  nn_detail::gather_kernel<T><<<blocks_for(total), kThreads, 0, stream()>>>(x, idx, out, outer, n_src, n_idx, inner,
                                                                            check_only, fault_slot(), fault_op(op));
  SIGLITE_CUDA_LAUNCHED();
}

/// Deterministic: the positions are stably sorted by index (CUB radix sort over the bits that n_src needs), then
/// each destination element is one thread's sum, in position order, as the CPU adds them. An index outside
/// [0, n_src) (gather rejects those first) is skipped.
template <typename T>
void scatter_add(const T* g, const int64_t* idx, T* gx, int64_t outer, int64_t n_src, int64_t n_idx, int64_t inner) {
  if (outer <= 0 || n_src <= 0 || n_idx <= 0 || inner <= 0) return;
  const cudaStream_t s = stream();
  Workspace<uint64_t> keys(2 * n_idx);
  Workspace<int64_t> positions(2 * n_idx);
  uint64_t* keys_in = keys.get();
  uint64_t* keys_out = keys.get() + n_idx;
  int64_t* pos_in = positions.get();
  int64_t* pos_out = positions.get() + n_idx;
  nn_detail::scatter_keys_kernel<uint64_t><<<blocks_for(n_idx), kThreads, 0, s>>>(idx, n_idx, n_src, keys_in, pos_in);
  SIGLITE_CUDA_LAUNCHED();
  int end_bit = 1;  // keys lie in [0, n_src] (n_src marks a bad index): sort the bits below 2^end_bit > n_src
  while (end_bit < 64 && (uint64_t(1) << end_bit) <= static_cast<uint64_t>(n_src)) ++end_bit;
  size_t temp_bytes = 0;
  SIGLITE_CUDA_CHECK(
      cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, keys_in, keys_out, pos_in, pos_out, n_idx, 0, end_bit, s));
  Workspace<unsigned char> temp(static_cast<int64_t>(temp_bytes));
  SIGLITE_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp.get(), temp_bytes, keys_in, keys_out, pos_in, pos_out, n_idx,
                                                     0, end_bit, s));
  const int64_t total = outer * n_idx * inner;
  nn_detail::scatter_add_kernel<T>
      <<<blocks_for(total), kThreads, 0, s>>>(g, keys_out, pos_out, gx, outer, n_src, n_idx, inner);
  SIGLITE_CUDA_LAUNCHED();
}

template <typename T>
void patchify(T* images, T* patches, int64_t n, int64_t c, int64_t h, int64_t w, int64_t p, bool to_images) {
  if (p <= 0) return;
  const int64_t total = n * (h / p) * (w / p) * c * p * p;
  if (total <= 0) return;
  nn_detail::patchify_kernel<T>
      <<<blocks_for(total), kThreads, 0, stream()>>>(images, patches, n, c, h, w, p, to_images);
  SIGLITE_CUDA_LAUNCHED();
}

}  // namespace siglite::cuda
