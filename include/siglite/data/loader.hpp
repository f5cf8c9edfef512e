// Loader: seeded shuffling, batching, tokenising and a background prefetch thread, so that decoding
// the next batch overlaps the training step. The batch at step k is a pure function of (dataset,
// seed, batch size, k), which is what lets a resumed run see exactly the batches it would have.
#pragma once
#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <numeric>
#include <thread>
#include <vector>

#include "siglite/data/dataset.hpp"
#include "siglite/data/tokenizer.hpp"

namespace siglite::data {

struct TextImageBatch {
  Tensor<float> images;   // [N, C, H, W]
  Tensor<int64_t> ids;    // [N, L], sticky-EOS padded
  Tensor<int64_t> labels; // [N], -1 where there is no label
  std::vector<std::string> captions;
  std::vector<int64_t> indices;  // the dataset index of each example
};

/// Datasets larger than this are read in index order: their examples are already independent
/// draws (the procedural ones), and a permutation would not fit in memory.
inline constexpr int64_t kMaxShuffledSize = int64_t{1} << 26;

/// The order in which batches visit a dataset: epoch e = step / (size / batch) is a permutation seeded by
/// (seed, e), and the last partial batch of an epoch is dropped. The permutation is made once per epoch and kept
/// for the batches that follow in it.
class BatchOrder {
 public:
  BatchOrder(int64_t size, int64_t batch, uint64_t seed) : size_(size), batch_(batch), seed_(seed) {
    SIGLITE_CHECK(batch >= 1 && batch <= size, "BatchOrder: batch size ", batch, " for a dataset of ", size,
                  " examples");
  }

  /// The dataset indices of batch `step`.
  std::vector<int64_t> indices(int64_t step) {
    std::vector<int64_t> out(static_cast<size_t>(batch_));
    if (size_ > kMaxShuffledSize) {
      const int64_t start = (step * batch_) % (size_ - batch_ + 1);
      std::iota(out.begin(), out.end(), start);
      return out;
    }
    const int64_t per_epoch = size_ / batch_, epoch = step / per_epoch, offset = (step % per_epoch) * batch_;
    if (epoch != epoch_) shuffle(epoch);
    std::copy_n(perm_.begin() + offset, batch_, out.begin());
    return out;
  }

  /// How many epochs' permutations have been made so far.
  int64_t permutations() const { return permutations_; }

 private:
  void shuffle(int64_t epoch) {
    perm_.resize(static_cast<size_t>(size_));
    std::iota(perm_.begin(), perm_.end(), 0);
    Generator gen(detail::example_seed(seed_, 1000, epoch));
    for (int64_t i = size_ - 1; i > 0; --i) std::swap(perm_[size_t(i)], perm_[size_t(gen.randint(uint64_t(i) + 1))]);
    epoch_ = epoch;
    ++permutations_;
  }

  int64_t size_, batch_;
  uint64_t seed_;
  int64_t epoch_ = -1, permutations_ = 0;
  std::vector<int64_t> perm_;
};

/// The dataset indices of batch `step` (BatchOrder's, made for this one batch).
inline std::vector<int64_t> batch_indices(int64_t size, int64_t batch, uint64_t seed, int64_t step) {
  return BatchOrder(size, batch, seed).indices(step);
}

/// Which part of each batch a loader produces: rows index * b ... index * b + b - 1 of the batch, b = batch / count
/// (a data-parallel rank's shard; the whole batch by default).
struct Shard {
  int index = 0, count = 1;
};

/// Produces batches step, step+1, ... (their shard `shard`) on a background thread, `depth` ahead of the consumer.
class Loader {
 public:
  Loader(const Dataset& ds, const Tokenizer& tok, int64_t batch, int64_t text_length, uint64_t seed,
         int64_t first_step = 0, int depth = 2, Shard shard = {})
      : ds_(ds), tok_(tok), order_(ds.size(), batch, seed), length_(text_length), next_(first_step), depth_(depth),
        shard_(shard) {
    SIGLITE_CHECK(shard.count >= 1 && shard.index >= 0 && shard.index < shard.count && batch % shard.count == 0,
                  "Loader: shard ", shard.index, " of ", shard.count, " of a batch of ", batch,
                  "; the batch must split into equal shards");
    worker_ = std::thread([this] { produce(); });
  }
  ~Loader() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    worker_.join();
  }
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  /// The next batch; rethrows an error the worker met (a corrupt image, say).
  TextImageBatch next() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return !queue_.empty() || error_; });
    if (queue_.empty()) std::rethrow_exception(error_);
    TextImageBatch b = std::move(queue_.front());
    queue_.pop_front();
    cv_.notify_all();
    return b;
  }

  /// Builds one batch on the calling thread.
  static TextImageBatch load(const Dataset& ds, const Tokenizer& tok, const std::vector<int64_t>& indices,
                             int64_t text_length) {
    Batch b = make_batch(ds, indices);
    TextImageBatch out;
    out.images = b.images;
    out.ids = tok.batch(b.captions, text_length);
    out.labels = b.labels;
    out.captions = std::move(b.captions);
    out.indices = indices;
    return out;
  }

 private:
  void produce() {
    try {
      for (;;) {
        {
          std::unique_lock<std::mutex> lock(mu_);
          cv_.wait(lock, [this] { return stop_ || static_cast<int>(queue_.size()) < depth_; });
          if (stop_) return;
        }
        std::vector<int64_t> indices = order_.indices(next_++);
        if (shard_.count > 1) {
          const size_t per_shard = indices.size() / static_cast<size_t>(shard_.count);
          const auto first = indices.begin() + static_cast<std::ptrdiff_t>(per_shard * size_t(shard_.index));
          indices = std::vector<int64_t>(first, first + static_cast<std::ptrdiff_t>(per_shard));
        }
        TextImageBatch b = load(ds_, tok_, indices, length_);
        {
          std::lock_guard<std::mutex> lock(mu_);
          queue_.push_back(std::move(b));
        }
        cv_.notify_all();
      }
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      error_ = std::current_exception();
      cv_.notify_all();
    }
  }

  const Dataset& ds_;
  const Tokenizer& tok_;
  BatchOrder order_;  // used by the worker thread alone
  int64_t length_;
  int64_t next_;
  int depth_;
  Shard shard_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<TextImageBatch> queue_;
  std::exception_ptr error_;
  bool stop_ = false;
  std::thread worker_;
};

}  // namespace siglite::data
