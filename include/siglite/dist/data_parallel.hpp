// What data-parallel training needs besides the loss: the ranks' gradients summed, agreement on decisions each rank
// could make alone (stop now, how many steps), and the check that the ranks' parameters are the same to the bit.
// train::Trainer::distribute uses them; docs/distributed.md explains the whole.
#pragma once
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "siglite/autograd/node.hpp"
#include "siglite/dist/communicator.hpp"

namespace siglite::dist {

/// Sums the gradients of `params` over the ranks, in place: the gradients are packed into buckets of at most
/// `bucket_elements` elements (one all-reduce each, in the order given), then unpacked. Every rank must pass the
/// same parameters with gradients of the same shapes; a parameter without a gradient must lack it on every rank.
template <typename T>
void all_reduce_gradients(Communicator& comm, const std::vector<Tensor<T>>& params,
                          int64_t bucket_elements = int64_t{1} << 22) {
  if (comm.size() == 1) return;
  NoGradGuard no_grad;
  std::vector<Tensor<T>> grads;
  for (const Tensor<T>& p : params)
    if (p.grad().defined()) grads.push_back(p.grad());
  size_t first = 0;
  while (first < grads.size()) {
    const Device dev = grads[first].device();
    size_t last = first;
    int64_t count = 0;
    do {
      count += grads[last].numel();
      ++last;
    } while (last < grads.size() && count + grads[last].numel() <= bucket_elements &&
             grads[last].device() == dev);
    const Tensor<T> bucket = Tensor<T>::empty({count}, dev);
    const kernels::Kernels<T>& k = kernels::on<T>(dev);
    int64_t at = 0;
    for (size_t i = first; i < last; ++i) {
      const Tensor<T>& g = grads[i];
      k.copy(g.view(), bucket.slice(0, at, at + g.numel()).reshape(g.shape()).mutable_view());
      at += g.numel();
    }
    comm.all_reduce_sum(buffer_of(bucket));
    at = 0;
    for (size_t i = first; i < last; ++i) {
      const Tensor<T>& g = grads[i];
      k.copy(bucket.slice(0, at, at + g.numel()).reshape(g.shape()).view(), g.mutable_view());
      at += g.numel();
    }
    first = last;
  }
}

/// Whether `flag` holds on every rank; the same answer on all of them.
inline bool all_ranks(Communicator& comm, bool flag) {
  if (comm.size() == 1) return flag;
  const Tensor<int64_t> x = Tensor<int64_t>::full({1}, flag ? 1 : 0, Device::cpu());
  comm.all_reduce_sum(buffer_of(x));
  return x.item() == comm.size();
}

/// Rank 0's value of v, on every rank.
inline int64_t from_rank0(Communicator& comm, int64_t v) {
  if (comm.size() == 1) return v;
  const Tensor<int64_t> x = Tensor<int64_t>::full({1}, v, Device::cpu());
  comm.broadcast(buffer_of(x), 0);
  return x.item();
}

/// 64-bit FNV-1a of a tensor's bytes, row-major.
template <typename T>
int64_t fingerprint(const Tensor<T>& t) {
  const std::vector<T> v = t.to_vector();
  uint64_t h = 1469598103934665603ULL;
  const auto* bytes = reinterpret_cast<const unsigned char*>(v.data());
  for (size_t i = 0; i < v.size() * sizeof(T); ++i) h = (h ^ bytes[i]) * 1099511628211ULL;
  int64_t out;
  std::memcpy(&out, &h, sizeof out);
  return out;
}

/// Throws, on every rank, when a tensor differs between ranks (by fingerprint): the message names the first such
/// tensor, a rank whose copy differs from rank 0's, and `when` ("at start", "after step 40").
template <typename T>
void check_identical(Communicator& comm, const std::vector<std::pair<std::string, Tensor<T>>>& named,
                     const std::string& when) {
  if (comm.size() == 1 || named.empty()) return;
  std::vector<int64_t> mine;
  for (const auto& [name, t] : named) mine.push_back(fingerprint(t));
  const auto n = static_cast<int64_t>(mine.size());
  const Tensor<int64_t> local = Tensor<int64_t>::from_vector(mine, Device::cpu());
  const Tensor<int64_t> all = Tensor<int64_t>::empty({n * comm.size()}, Device::cpu());
  comm.all_gather(buffer_of(local), buffer_of(all));
  const std::vector<int64_t> v = all.to_vector();
  for (int64_t i = 0; i < n; ++i)
    for (int r = 1; r < comm.size(); ++r)
      SIGLITE_CHECK(v[static_cast<size_t>(r * n + i)] == v[static_cast<size_t>(i)], "data parallel: ",
                    named[static_cast<size_t>(i)].first, " differs between rank 0 and rank ", r, " ", when,
                    "; every rank must start from the same weights (the same seed or checkpoint) and apply the same ",
                    "updates");
}

}  // namespace siglite::dist
