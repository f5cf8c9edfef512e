// CUDA reductions and top-k, the CUDA side of cpu::reduce and cpu::topk. reduce views x as a matrix [n_out, n_red]
// (kept axes x reduced axes, each coalesced into a strided view) and reduces each row with a warp (reduced axes
// innermost) or each column with a thread column of a block (kept axes innermost); a long row is split into chunks
// whose partials a second pass combines. Every order is fixed by the shape alone, so sums are deterministic. topk
// sorts (key, column) pairs of each row with CUB's segmented radix sort, the keys made so that an ascending stable
// sort gives the CPU's order.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cub/cub.cuh>
#include <limits>
#include <type_traits>

#include "siglite/backends/cuda/allocator.cuh"
#include "siglite/backends/cuda/common.cuh"
#include "siglite/backends/cuda/elementwise.cuh"
#include "siglite/backends/kernels.hpp"

namespace siglite::cuda {

using kernels::Reduce;

namespace reduce_detail {

using elementwise_detail::offset_of;
using elementwise_detail::thread_index;
using elementwise_detail::thread_stride;

/// Sum: accumulated in double (the CPU's Acc for floating point), stored as T.
template <typename T>
struct SumOp {
  using Value = T;
  using Acc = double;
  static __device__ __forceinline__ Acc identity() { return 0.0; }
  static __device__ __forceinline__ Acc load(T v, int64_t) { return static_cast<double>(v); }
  static __device__ __forceinline__ Acc combine(Acc a, Acc b) { return a + b; }
  static __device__ __forceinline__ T finish(Acc a) { return static_cast<T>(a); }
  static __device__ __forceinline__ Acc shuffle_down(Acc a, int delta) { return __shfl_down_sync(~0u, a, delta); }
};

/// A candidate maximum and its position along the reduced axes.
template <typename T>
struct MaxAcc {
  T value;
  int64_t index;
};

/// Max as the CPU's sequential fold `acc = acc < v || isnan(v) ? v : acc` from -inf computes it: the last NaN if
/// there is one, else the first element equal to the largest (the first of -0.0 and +0.0). Keeping the position
/// makes that combine commutative and associative, so any fixed tree gives the CPU's result, bits included.
template <typename T>
struct MaxOp {
  using Value = T;
  using Acc = MaxAcc<T>;
  static __device__ __forceinline__ Acc identity() { return {-cuda::infinity<T>(), INT64_MAX}; }
  static __device__ __forceinline__ Acc load(T v, int64_t r) { return {v, r}; }
  static __device__ __forceinline__ Acc combine(Acc a, Acc b) {
    const bool na = isnan(a.value), nb = isnan(b.value);
    if (na || nb) return na && nb ? (a.index > b.index ? a : b) : (na ? a : b);
    if (a.value != b.value) return a.value > b.value ? a : b;
    return a.index < b.index ? a : b;
  }
  static __device__ __forceinline__ T finish(Acc a) { return a.value; }
  static __device__ __forceinline__ Acc shuffle_down(Acc a, int delta) {
    return {__shfl_down_sync(~0u, a.value, delta), static_cast<int64_t>(__shfl_down_sync(~0u, a.index, delta))};
  }
};

/// Element (o, r) of x: kept.data[offset_of(kept, o) + offset_of(red, r)], loaded as Op's Acc. base(o) is the
/// part that depends on o alone, computed once per output.
template <typename Op>
struct StridedLoad {
  using T = typename Op::Value;
  StridedView<const T> kept, red;
  __device__ __forceinline__ int64_t base(int64_t o) const { return offset_of(kept, o); }
  __device__ __forceinline__ typename Op::Acc operator()(int64_t base, int64_t r) const {
    return Op::load(kept.data[base + offset_of(red, r)], r);
  }
};

/// The partials of the first pass, [n_out, splits] contiguous.
template <typename Op>
struct PartialLoad {
  const typename Op::Acc* partial;
  int64_t splits;
  __device__ __forceinline__ int64_t base(int64_t o) const { return o * splits; }
  __device__ __forceinline__ typename Op::Acc operator()(int64_t base, int64_t s) const { return partial[base + s]; }
};

/// One warp per (output o, chunk s) item, item = o * splits + s: lanes stride over r in [s * chunk, (s + 1) * chunk)
/// (capped at n_red), then a shuffle tree. With one split the result goes to out[o], else to partial[item].
template <typename Op, typename Load>
__global__ void reduce_rows_kernel(Load load, int64_t n_out, int64_t n_red, int64_t splits, int64_t chunk,
                                   typename Op::Acc* partial, typename Op::Value* out) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  const int64_t items = n_out * splits;
  const int64_t warp = thread_index() / 32, warps = thread_stride() / 32;
  for (int64_t item = warp; item < items; item += warps) {  // uniform over the warp
    const int64_t o = item / splits, s = item % splits;
    const int64_t begin = s * chunk, end = begin + chunk < n_red ? begin + chunk : n_red;
    const int64_t base = load.base(o);
    typename Op::Acc acc = Op::identity();
    for (int64_t r = begin + lane; r < end; r += 32) acc = Op::combine(acc, load(base, r));
#pragma unroll
    for (int delta = 16; delta > 0; delta /= 2) acc = Op::combine(acc, Op::shuffle_down(acc, delta));
    if (lane == 0) {
      if (splits == 1) out[o] = Op::finish(acc);
      else partial[item] = acc;
    }
  }
}

constexpr int kColTile = 32;  // outputs of a block (threadIdx.x)
constexpr int kColRows = 8;   // threads of a block along r (threadIdx.y)

/// Block (blockIdx.x, s = blockIdx.y) reduces outputs [blockIdx.x * 32, + 32) over r in chunk s: thread (x, y)
/// folds r = begin + y, begin + y + 8, ..., then thread (x, 0) combines the 8 partials in order.
template <typename Op, typename Load>
__global__ void reduce_cols_kernel(Load load, int64_t n_out, int64_t n_red, int64_t splits, int64_t chunk,
                                   typename Op::Acc* partial, typename Op::Value* out) {
  __shared__ typename Op::Acc shared[kColRows][kColTile];
  const int64_t o = static_cast<int64_t>(blockIdx.x) * kColTile + threadIdx.x;
  const int64_t s = blockIdx.y;
  const int64_t begin = s * chunk, end = begin + chunk < n_red ? begin + chunk : n_red;
  typename Op::Acc acc = Op::identity();
  if (o < n_out) {
    const int64_t base = load.base(o);
    for (int64_t r = begin + threadIdx.y; r < end; r += kColRows) acc = Op::combine(acc, load(base, r));
  }
  shared[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && o < n_out) {
    for (int j = 1; j < kColRows; ++j) acc = Op::combine(acc, shared[j][threadIdx.x]);
    if (splits == 1) out[o] = Op::finish(acc);
    else partial[o * splits + s] = acc;
  }
}

/// Warps the row kernel aims for before it splits rows (about 64 per SM of an H100; a constant, so that the order
/// of a sum never depends on the device), and the shortest chunk a split leaves a warp.
constexpr int64_t kTargetWarps = 8192;
constexpr int64_t kMinRowChunk = 2048;
/// Blocks the column kernel aims for, and the shortest chunk of r a split leaves a block.
constexpr int64_t kTargetBlocks = 1024;
constexpr int64_t kMinColChunk = 256;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

template <typename Op>
void reduce_impl(const View<const typename Op::Value>& x, size_t kept, typename Op::Value* out) {
  using T = typename Op::Value;
  using Acc = typename Op::Acc;
  using elementwise_detail::coalesce;
  const Shape& shape = x.shape;
  Shape kept_shape, kept_strides, red_shape, red_strides;
  for (size_t i = 0; i < shape.size(); ++i) {
    (i < kept ? kept_shape : red_shape).push_back(shape[i]);
    (i < kept ? kept_strides : red_strides).push_back(x.strides[i]);
  }
  const int64_t n_out = kept_shape.numel(), n_red = red_shape.numel();
  if (n_out == 0) return;
  const auto kc = coalesce<1>(kept_shape, {&kept_strides});
  const auto rc = coalesce<1>(red_shape, {&red_strides});
  const StridedLoad<Op> load{strided(x.data, kc.shape, kc.strides[0]), strided(x.data, rc.shape, rc.strides[0])};
  const int64_t kept_inner = kc.shape.size() > 0 ? kc.strides[0].back() : 0;
  const int64_t red_inner = rc.shape.size() > 0 ? rc.strides[0].back() : 1;
  // Columns where they are the coalesced direction, or where rows are too short to occupy a warp.
  const bool columns = n_red < 32 || (kept_inner == 1 && red_inner != 1);

  int64_t splits = 1, chunk = n_red;
  if (columns) {
    const int64_t tiles = ceil_div(n_out, kColTile);
    SIGLITE_CHECK(tiles <= INT_MAX, "reduce: too many outputs (", n_out, ")");
    splits = std::max<int64_t>(1, std::min({ceil_div(n_red, kMinColChunk), kTargetBlocks / tiles, int64_t(65535)}));
  } else {
    splits = std::max<int64_t>(1, std::min(ceil_div(n_red, kMinRowChunk), kTargetWarps / n_out));
  }
  chunk = ceil_div(n_red, splits);
  splits = ceil_div(n_red, chunk);  // no empty chunk

  Workspace<Acc> partial(splits > 1 ? n_out * splits : 1);
  if (columns) {
    const dim3 grid(static_cast<unsigned>(ceil_div(n_out, kColTile)), static_cast<unsigned>(splits));
    reduce_cols_kernel<Op><<<grid, dim3(kColTile, kColRows), 0, stream()>>>(load, n_out, n_red, splits, chunk,
                                                                           partial.get(), out);
  } else {
    reduce_rows_kernel<Op><<<blocks_for(n_out * splits * 32), kThreads, 0, stream()>>>(load, n_out, n_red, splits,
                                                                                       chunk, partial.get(), out);
  }
  SIGLITE_CUDA_LAUNCHED();
  if (splits > 1) {  // the chunks of each output in order, one warp an output
    reduce_rows_kernel<Op><<<blocks_for(n_out * 32), kThreads, 0, stream()>>>(
        PartialLoad<Op>{partial.get(), splits}, n_out, splits, 1, splits, nullptr, out);
    SIGLITE_CUDA_LAUNCHED();
  }
}

/// The radix-sort key type of T, of T's width.
template <typename T>
using KeyBits = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;

/// A key whose ascending order is the descending order of the values: -0.0 made +0.0 and every NaN the positive
/// quiet NaN (so equal values have equal keys, and NaN sits above +inf), the sign-magnitude bits made
/// order-preserving unsigned, then complemented.
template <typename T>
__device__ __forceinline__ KeyBits<T> descending_key(T v) {
  using K = KeyBits<T>;
  K bits;
  if constexpr (sizeof(T) == 4) bits = isnan(v) ? K(0x7fc00000u) : K(__float_as_uint(v == T(0) ? T(0) : v));
  else bits = isnan(v) ? K(0x7ff8000000000000ull) : K(__double_as_longlong(v == T(0) ? T(0) : v));
  const K sign = K(1) << (sizeof(K) * 8 - 1);
  const K ordered = (bits & sign) ? ~bits : (bits | sign);
  return ~ordered;
}

/// Keys and column numbers of rows [row0, row0 + rows) of x, and the rows + 1 segment offsets.
template <typename T>
__global__ void topk_prepare_kernel(StridedView<const T> x, int64_t row0, int64_t rows, int64_t cols,
                                    KeyBits<T>* keys, int* columns, int* offsets) {
  const int64_t n = rows * cols;
  for (int64_t i = thread_index(); i < n; i += thread_stride()) {
    const int64_t r = i / cols, c = i % cols;
    keys[i] = descending_key(x.data[(row0 + r) * x.strides[0] + c * x.strides[1]]);
    columns[i] = static_cast<int>(c);
  }
  for (int64_t i = thread_index(); i <= rows; i += thread_stride()) offsets[i] = static_cast<int>(i * cols);
}

/// indices[(row0 + r) * k + j] = sorted[r * cols + j] for j < k (a template, as a header's kernel must be).
template <typename Column>
__global__ void topk_take_kernel(const Column* sorted, int64_t row0, int64_t rows, int64_t cols, int64_t k,
                                 int64_t* indices) {
  const int64_t n = rows * k;
  for (int64_t i = thread_index(); i < n; i += thread_stride()) {
    const int64_t r = i / k, j = i % k;
    indices[(row0 + r) * k + j] = sorted[r * cols + j];
  }
}

/// Elements topk sorts at once (rows are taken whole, at least one): its scratch is 16 (float) or 24 (double) bytes
/// an element.
constexpr int64_t kTopkBatch = int64_t(1) << 24;

}  // namespace reduce_detail

/// Reduces the trailing x.shape.size() - kept axes of x into out (contiguous, the kept axes). No reduced element:
/// out is 0 (Sum) or -inf (Max), as on the CPU.
template <typename T>
void reduce(Reduce op, const View<const T>& x, size_t kept, T* out) {
  using namespace reduce_detail;
  int64_t n_out = 1, n_red = 1;
  for (size_t i = 0; i < x.shape.size(); ++i) (i < kept ? n_out : n_red) *= x.shape[i];
  if (n_out == 0) return;
  if (n_red == 0) return fill(out, n_out, op == Reduce::Sum ? T(0) : -cuda::infinity<T>());
  if (op == Reduce::Sum) return reduce_impl<SumOp<T>>(x, kept, out);
  return reduce_impl<MaxOp<T>>(x, kept, out);
}

/// indices[r, :] = the columns of the k largest of row r of x [rows, cols], largest first, as a stable descending
/// sort (equal elements in column order, NaN above every number): CUB's segmented radix sort, a batch of rows at a
/// time, of (descending_key, column) pairs.
template <typename T>
void topk(const View<const T>& x, int64_t k, int64_t* indices) {
  using namespace reduce_detail;
  using K = KeyBits<T>;
  const int64_t rows = x.shape[0], cols = x.shape[1];
  if (rows == 0 || cols == 0 || k == 0) return;
  SIGLITE_CHECK(cols <= INT_MAX, "topk: rows of ", cols, " columns are too long for the CUDA sort");
  const int64_t batch_rows = std::min(rows, std::max<int64_t>(1, kTopkBatch / cols));
  const int64_t batch = batch_rows * cols;
  const StridedView<const T> view = strided(x);
  Workspace<K> keys_a(batch), keys_b(batch);
  Workspace<int> columns_a(batch), columns_b(batch), offsets(batch_rows + 1);
  for (int64_t row0 = 0; row0 < rows; row0 += batch_rows) {
    const int64_t n_rows = std::min(batch_rows, rows - row0), n = n_rows * cols;
    topk_prepare_kernel<T><<<blocks_for(n), kThreads, 0, stream()>>>(view, row0, n_rows, cols, keys_a.get(),
                                                                      columns_a.get(), offsets.get());
    SIGLITE_CUDA_LAUNCHED();
    // Double buffers: the sort may leave its result in either; Current() says which (decided on the host).
    cub::DoubleBuffer<K> keys(keys_a.get(), keys_b.get());
    cub::DoubleBuffer<int> columns(columns_a.get(), columns_b.get());
    size_t temp_bytes = 0;
    SIGLITE_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairs(nullptr, temp_bytes, keys, columns, static_cast<int>(n),
                                                                static_cast<int>(n_rows), offsets.get(),
                                                                offsets.get() + 1, 0, int(sizeof(K) * 8), stream()));
    Workspace<unsigned char> temp(static_cast<int64_t>(temp_bytes));
    SIGLITE_CUDA_CHECK(cub::DeviceSegmentedRadixSort::SortPairs(temp.get(), temp_bytes, keys, columns,
                                                                static_cast<int>(n), static_cast<int>(n_rows),
                                                                offsets.get(), offsets.get() + 1, 0,
                                                                int(sizeof(K) * 8), stream()));
    topk_take_kernel<int><<<blocks_for(n_rows * k), kThreads, 0, stream()>>>(columns.Current(), row0, n_rows, cols, k,
                                                                             indices);
    SIGLITE_CUDA_LAUNCHED();
  }
}

}  // namespace siglite::cuda
