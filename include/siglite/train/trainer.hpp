// The training loop as a library: SigLIP (or SigLiT, with the image tower locked) on a dataset,
// AdamW with linear warmup and cosine decay, the sigmoid (naive, tiled, chunked or gathered) or softmax loss,
// gradient clipping, callbacks, atomic checkpoints and exact resume; data parallel over the ranks of a
// dist::Communicator (Trainer::distribute).
#pragma once
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "siglite/core/files.hpp"
#include "siglite/core/names.hpp"
#include "siglite/data/loader.hpp"
#include "siglite/dist/data_parallel.hpp"
#include "siglite/dist/loss.hpp"
#include "siglite/io/checkpoint.hpp"
#include "siglite/loss/sigmoid.hpp"
#include "siglite/loss/softmax.hpp"
#include "siglite/optim/optim.hpp"

namespace siglite::train {

/// The loss a Trainer minimises: the sigmoid loss naive or tiled (loss/sigmoid.hpp), chunked or gathered over the
/// ranks (dist/loss.hpp), or the softmax (CLIP) loss.
enum class LossKind { Naive, Tiled, Softmax, Chunked, Gathered };

}  // namespace siglite::train

namespace siglite {
template <>
struct EnumNames<train::LossKind> {
  static constexpr const char* what = "loss";
  static constexpr std::pair<train::LossKind, const char*> values[] = {
      {train::LossKind::Naive, "naive"},     {train::LossKind::Tiled, "tiled"},
      {train::LossKind::Softmax, "softmax"}, {train::LossKind::Chunked, "chunked"},
      {train::LossKind::Gathered, "gathered"}};
};
}  // namespace siglite

namespace siglite::train {

struct TrainOptions {
  int64_t batch_size = 256;
  int64_t steps = 0;       // planned steps; 0 = plan from `minutes`
  double minutes = 0;      // wall-clock budget when steps == 0
  double lr = 1e-3;
  double weight_decay = 1e-4;
  double beta2 = 0.95;
  double warmup_fraction = 0.1;  // of the planned steps
  double bias_lr_mult = 1.0;     // learning-rate multiplier of t' and b
  LossKind loss = LossKind::Tiled;
  double clip_norm = 1.0;        // 0 = no clipping
  uint64_t seed = 0;
  bool lock_image = false;       // SigLiT: the image tower is frozen and its embeddings cached
  std::string out_dir;           // checkpoints go here when set
  int64_t checkpoint_every = 0;  // steps; 0 = only at the end
  int64_t stop_at = 0;           // end this run after this step (the plan stays); 0 = run to the end
};

struct StepInfo {
  int64_t step = 0;           // steps done
  int64_t planned_steps = 0;
  double loss = 0, t = 0, b = 0, lr = 0, grad_norm = 0;
  double pairs_per_s = 0;     // over the run so far
  double elapsed_s = 0, eta_s = 0;
};

struct TrainResult {
  int64_t steps = 0;
  double final_loss = 0, pairs_per_s = 0, t = 0, b = 0, seconds = 0;
  std::vector<StepInfo> history;
  bool stopped = false;  // ended early by Trainer::request_stop
};

/// A checkpoint is written into this folder of its directory, then moved in: the marker file kCheckpointCommitted,
/// written last, lists the files once all are complete.
inline constexpr const char* kCheckpointStaging = ".checkpoint-staging";
inline constexpr const char* kCheckpointCommitted = "COMMITTED";

/// Completes or discards a checkpoint write that was cut short in `dir`: with the marker, the listed files still in
/// the staging folder are moved into `dir` (one rename each: a cut here is completed next time); without it, the
/// staging folder, a write that never finished, is removed and the previous checkpoint stays as it was. Then no
/// staging folder is left. Trainer::save_checkpoint and Trainer::resume call it first.
inline void finish_checkpoint(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  const fs::path staging = dir / kCheckpointStaging, marker = staging / kCheckpointCommitted;
  std::error_code ec;
  if (!fs::exists(staging, ec)) return;
  if (fs::exists(marker, ec)) {
    std::ifstream in(marker);
    std::string name;
    while (std::getline(in, name)) {
      if (name.empty() || !fs::exists(staging / name, ec)) continue;
      fs::rename(staging / name, dir / name, ec);
      SIGLITE_CHECK(!ec, "finish_checkpoint: cannot move ", (staging / name).string(), " into ", dir.string(), ": ",
                    ec.message());
    }
  }
  fs::remove_all(staging, ec);
  SIGLITE_CHECK(!ec, "finish_checkpoint: cannot remove ", staging.string(), ": ", ec.message());
}

class Trainer {
 public:
  using Callback = std::function<void(const StepInfo&)>;

  Trainer(models::SigLIP<float>& model, const data::Dataset& ds, const data::Tokenizer& tok, TrainOptions options)
      : model_(model), ds_(ds), tok_(tok), opt_(std::move(options)) {
    SIGLITE_CHECK(opt_.steps > 0 || opt_.minutes > 0, "Trainer: give a number of steps or a time budget in minutes");
    SIGLITE_CHECK(opt_.batch_size >= 1 && opt_.batch_size <= ds.size(), "Trainer: batch size ", opt_.batch_size,
                  " for a dataset of ", ds.size(), " examples");
    SIGLITE_CHECK(ds.channels() == model.config().vision.num_channels &&
                      ds.image_size() == model.config().vision.image_size,
                  "Trainer: the dataset's ", ds.channels(), "x", ds.image_size(), "x", ds.image_size(),
                  " images do not fit the model's ", model.config().vision.num_channels, "x",
                  model.config().vision.image_size, "x", model.config().vision.image_size);
    SIGLITE_CHECK(tok.vocab_size() <= model.config().text.vocab_size, "Trainer: the tokenizer's ", tok.vocab_size(),
                  " ids do not fit the model's vocabulary of ", model.config().text.vocab_size);
    if (opt_.lock_image) model_.vision_model->freeze();
    optim::NamedParams trainable;
    for (const auto& [name, p] : model_.named_parameters())
      if (p.requires_grad()) trainable.emplace_back(name, p);
    auto groups = optim::split_decay(trainable);
    if (opt_.bias_lr_mult != 1.0) {
      groups = optim::with_lr_mult(groups, "logit_scale", opt_.bias_lr_mult);
      groups = optim::with_lr_mult(groups, "logit_bias", opt_.bias_lr_mult);
    }
    optim::AdamWOptions ao;
    ao.lr = opt_.lr;
    ao.beta2 = opt_.beta2;
    ao.weight_decay = opt_.weight_decay;
    optimizer_ = std::make_unique<optim::AdamW>(groups, ao);
    for (const auto& [name, p] : trainable) trainable_.push_back(p);
  }

  /// Trains as one rank of `comm`, data parallel (docs/distributed.md): each rank takes its shard of every batch
  /// (batch_size is the global batch), the loss is chunked or gathered over the ranks, the gradients are summed
  /// over them before the update, rank 0 alone writes checkpoints, and the ranks agree on when to stop. Checks that
  /// every rank holds the same weights; with check_sync_every > 0, checks it again every that many steps. Call it on
  /// every rank, before resume() and run(); `comm` must outlive the trainer.
  void distribute(dist::Communicator& comm, int64_t check_sync_every = 0) {
    SIGLITE_CHECK(step_ == 0 && planned_ == 0, "Trainer::distribute: call it before resume() and run()");
    SIGLITE_CHECK(opt_.batch_size % comm.size() == 0, "Trainer: a batch of ", opt_.batch_size,
                  " does not split into equal shards for ", comm.size(), " ranks");
    SIGLITE_CHECK(comm.size() == 1 || opt_.loss == LossKind::Chunked || opt_.loss == LossKind::Gathered,
                  "Trainer: the ", to_string(opt_.loss), " loss sees only one rank's shard of the batch; over ",
                  comm.size(), " ranks use the chunked or gathered loss");
    SIGLITE_CHECK(check_sync_every >= 0, "Trainer::distribute: check_sync_every ", check_sync_every, " is negative");
    comm_ = &comm;
    check_sync_every_ = check_sync_every;
    dist::check_identical(comm, model_.named_parameters(), "at start");
  }

  void add_callback(Callback cb) { callbacks_.push_back(std::move(cb)); }

  /// The clock that times the run and plans a time budget: seconds from any fixed origin, never decreasing.
  /// std::chrono::steady_clock's by default; a test injects its own to make a budget's plan exact.
  void set_clock(std::function<double()> seconds) {
    SIGLITE_CHECK(seconds != nullptr, "Trainer::set_clock: an empty function");
    clock_ = std::move(seconds);
  }
  optim::Optimizer& optimizer() { return *optimizer_; }
  int64_t step() const { return step_; }

  /// Asks run() to stop after the step in progress, save the checkpoint (with out_dir) and return with
  /// TrainResult::stopped set. One lock-free store: safe from another thread or a signal handler.
  void request_stop() { stop_.store(true, std::memory_order_relaxed); }

  /// Continues from a checkpoint directory written by this trainer (model, optimizer, step and
  /// plan); the batches that follow are those an uninterrupted run would have seen.
  void resume(const std::filesystem::path& dir) {
    if (comm().rank() == 0) finish_checkpoint(dir);  // the one writer completes a cut write before anyone reads
    comm().barrier();
    const nlohmann::json st = read_state(dir / "trainer_state.json");
    SIGLITE_CHECK(st.at("batch_size") == opt_.batch_size && st.at("seed") == opt_.seed, "Trainer: ", dir.string(),
                  " was written with batch size ", st.at("batch_size"), " and seed ", st.at("seed"), ", not ",
                  opt_.batch_size, " and ", opt_.seed);
    io::load_safetensors(model_, dir / "model.safetensors", true);
    const io::TensorMap state = io::load_safetensors(dir / "optimizer.safetensors");
    optimizer_->load_state_dict(optim::OptimizerState::from_tensors(state));
    step_ = st.at("step").get<int64_t>();
    planned_ = st.at("planned_steps").get<int64_t>();
    prior_seconds_ = st.at("elapsed_s").get<double>();
    prior_pairs_ = step_ * opt_.batch_size;
    set_schedule();
  }

  /// Trains until the planned steps are done or the time budget is spent.
  TrainResult run() {
    const double start = clock_();
    const auto seconds = [&] { return clock_() - start; };
    data::Loader loader(ds_, tok_, opt_.batch_size, model_.config().text.max_position_embeddings, opt_.seed, step_, 2,
                        {comm().rank(), comm().size()});
    first_step_ = step_;
    const bool probed = planned_ == 0 && opt_.steps == 0;
    if (planned_ == 0) plan(loader, seconds);
    TrainResult result;
    const double budget_s = opt_.minutes * 60.0;
    const auto last = [&] { return opt_.stop_at > 0 ? std::min(opt_.stop_at, planned_) : planned_; };
    double replan_from_s = 0;
    int64_t halfway = -1;  // steps done at the second re-plan
    const auto go_on = [&] {  // every rank's answer: rank 0's clock alone would let the others run one step more
      return dist::all_ranks(comm(), step_ < last() && (opt_.steps > 0 || prior_seconds_ + seconds() < budget_s) &&
                                         !stop_.load(std::memory_order_relaxed));
    };
    while (go_on()) {
      const int64_t done = step_ - first_step_;
      if (probed && done == kReplanFrom) replan_from_s = seconds();
      if (probed && (done == kReplanAt || done == halfway)) {
        replan(budget_s - prior_seconds_ - seconds(), (seconds() - replan_from_s) / double(done - kReplanFrom));
        if (done == kReplanAt) halfway = std::max(kReplanAt + 1, (planned_ - first_step_) / 2);
      }
      StepInfo info = train_step(loader.next());
      info.elapsed_s = prior_seconds_ + seconds();
      info.pairs_per_s = double(step_ * opt_.batch_size - prior_pairs_) / seconds();
      info.eta_s = double(planned_ - step_) * seconds() / double(std::max<int64_t>(1, step_ - first_step_));
      result.history.push_back(info);
      for (const auto& cb : callbacks_) cb(info);
      if (check_sync_every_ > 0 && step_ % check_sync_every_ == 0)
        dist::check_identical(comm(), model_.named_parameters(), detail::cat("after step ", step_));
      if (writes() && opt_.checkpoint_every > 0 && step_ % opt_.checkpoint_every == 0)
        save_checkpoint(opt_.out_dir, prior_seconds_ + seconds());
    }
    if (writes()) save_checkpoint(opt_.out_dir, prior_seconds_ + seconds());
    result.steps = step_;
    result.seconds = seconds();
    // Ended early by a stop request: this rank's, or another rank's that all_ranks passed on.
    result.stopped = step_ < last() && (opt_.steps > 0 || prior_seconds_ + result.seconds < budget_s);
    result.pairs_per_s = double(step_ * opt_.batch_size - prior_pairs_) / std::max(1e-9, result.seconds);
    if (!result.history.empty()) result.final_loss = result.history.back().loss;
    result.t = std::exp(double(model_.logit_scale.item()));
    result.b = model_.logit_bias.item();
    return result;
  }

  /// Writes model (config.json, model.safetensors), optimizer state and the trainer's position into `dir` as one:
  /// all into its staging folder, then moved in (finish_checkpoint). A kill at any moment leaves the previous
  /// checkpoint or this one, never a mix; a failed write (a full disk) leaves the previous one and throws.
  void save_checkpoint(const std::filesystem::path& dir, double elapsed_s) const {
    namespace fs = std::filesystem;
    finish_checkpoint(dir);
    const fs::path staging = dir / kCheckpointStaging;
    std::error_code ec;
    fs::create_directories(staging, ec);
    SIGLITE_CHECK(!ec, "Trainer::save_checkpoint: cannot create ", staging.string(), ": ", ec.message());
    try {
      io::save_pretrained(model_, staging);
      const optim::OptimizerState st = optimizer_->state_dict();
      io::save_safetensors(staging / "optimizer.safetensors", st.to_tensors());
      nlohmann::json j = {{"step", step_},          {"planned_steps", planned_}, {"batch_size", opt_.batch_size},
                          {"seed", opt_.seed},      {"elapsed_s", elapsed_s},    {"loss", to_string(opt_.loss)},
                          {"lock_image", opt_.lock_image}};
      write_file_atomic(staging / "trainer_state.json", j.dump(2) + "\n", "Trainer::save_checkpoint");
      write_file_atomic(staging / kCheckpointCommitted,
                        "config.json\nmodel.safetensors\noptimizer.safetensors\ntrainer_state.json\n",
                        "Trainer::save_checkpoint");
    } catch (...) {
      fs::remove_all(staging, ec);
      throw;
    }
    finish_checkpoint(dir);
  }

 private:
  static nlohmann::json read_state(const std::filesystem::path& path) {
    std::ifstream in(path);
    SIGLITE_CHECK(in, "Trainer: cannot open ", path.string());
    try {
      return nlohmann::json::parse(in);
    } catch (const nlohmann::json::exception& e) {
      throw Error(detail::cat("Trainer: ", path.string(), " is not valid JSON: ", e.what()));
    }
  }

  /// Plans the number of steps for a time budget: two untimed-for-updates probe steps measure the
  /// step time (their gradients are dropped), then the remaining budget is divided by it.
  template <typename Seconds>
  void plan(data::Loader&, Seconds seconds) {
    if (opt_.steps > 0) {
      planned_ = opt_.steps;
    } else {
      std::vector<int64_t> indices = data::batch_indices(ds_.size(), opt_.batch_size, opt_.seed ^ 0x5eedULL, 0);
      const auto per_rank = static_cast<std::ptrdiff_t>(indices.size()) / comm().size();
      indices = std::vector<int64_t>(indices.begin() + per_rank * comm().rank(),
                                     indices.begin() + per_rank * (comm().rank() + 1));
      const data::TextImageBatch probe =
          data::Loader::load(ds_, tok_, indices, model_.config().text.max_position_embeddings);
      double per_step = 0;
      for (int i = 0; i < 2; ++i) {
        const double t0 = seconds();
        forward_loss(probe).backward();
        (void)model_.logit_bias.grad().item();  // waits for the device's work
        optimizer_->zero_grad();
        per_step = seconds() - t0;
      }
      const double left = opt_.minutes * 60.0 - prior_seconds_ - seconds();
      planned_ = dist::from_rank0(comm(), std::max<int64_t>(1, static_cast<int64_t>(left / (per_step * 1.03))));
    }
    set_schedule();
  }

  /// A time budget's plan, made again from the speed of whole steps (data, optimizer and all): the probe of
  /// plan() times forward and backward only. Done once kReplanAt steps have run, and again halfway through
  /// that plan, each time from the mean step time since kReplanFrom (the steps before it, with cold caches
  /// and the allocator filling, are not timed), keeping 2% of the time left to spare.
  void replan(double left_s, double per_step_s) {
    planned_ = dist::from_rank0(
        comm(), std::max<int64_t>(step_ + 1, step_ + static_cast<int64_t>(left_s / (per_step_s * 1.02))));
    set_schedule();
  }

  void set_schedule() {
    const auto warmup = static_cast<int64_t>(std::round(opt_.warmup_fraction * double(planned_)));
    optimizer_->set_schedule(optim::warmup_cosine(std::min(warmup, planned_), planned_));
  }

  static constexpr int64_t kReplanFrom = 3, kReplanAt = 13;

  Tensor<float> image_embeddings(const data::TextImageBatch& b) {
    const Device device = model_.device();
    if (!opt_.lock_image) return model_.image_embeddings(b.images.to(device));
    // SigLiT: the frozen tower's embedding of an example never changes; compute it once, keep it on the device.
    const int64_t n = b.images.size(0);
    std::vector<int64_t> missing, rows(static_cast<size_t>(n));
    for (int64_t k = 0; k < n; ++k) {
      const auto [it, fresh] = cache_row_.try_emplace(b.indices[size_t(k)], cached_ + int64_t(missing.size()));
      if (fresh) missing.push_back(k);
      rows[size_t(k)] = it->second;
    }
    if (!missing.empty()) {
      NoGradGuard no_grad;
      const Tensor<int64_t> picked = Tensor<int64_t>::from_vector(missing, Device::cpu());
      const Tensor<float> emb = model_.image_embeddings(index_select(b.images, 0, picked).to(device));
      const int64_t m = emb.size(0), end = cached_ + m;
      if (!cache_.defined() || end > cache_.size(0)) {  // grow by doubling: each embedding copied O(1) times
        Tensor<float> grown = Tensor<float>::empty({std::max(end, 2 * (cache_.defined() ? cache_.size(0) : 0)),
                                                    emb.size(1)}, device);
        if (cached_ > 0)
          kernels::on<float>(device).copy(cache_.slice(0, 0, cached_).view(), grown.slice(0, 0, cached_).mutable_view());
        cache_ = grown;
      }
      kernels::on<float>(device).copy(emb.view(), cache_.slice(0, cached_, end).mutable_view());
      cached_ = end;
    }
    return index_select(cache_, 0, Tensor<int64_t>::from_vector(rows, device));
  }

  Tensor<float> forward_loss(const data::TextImageBatch& b) {
    const Tensor<float> img = image_embeddings(b);
    const Tensor<float> txt = model_.text_embeddings(b.ids.to(model_.device()));
    switch (opt_.loss) {
      case LossKind::Softmax: return loss::softmax_loss(img, txt, model_.logit_scale);
      case LossKind::Chunked: return dist::chunked_sigmoid_loss(comm(), img, txt, model_.logit_scale, model_.logit_bias);
      case LossKind::Gathered:
        return dist::gathered_sigmoid_loss(comm(), img, txt, model_.logit_scale, model_.logit_bias);
      case LossKind::Naive:
      case LossKind::Tiled: break;
    }
    return loss::sigmoid_loss(img, txt, model_.logit_scale, model_.logit_bias,
                              opt_.loss == LossKind::Naive ? loss::SigmoidImpl::Naive : loss::SigmoidImpl::Tiled);
  }

  /// One step. The host waits for the device twice: once for the loss with the t' and b it used (one copy of
  /// three numbers; a non-finite loss stops the run before backward), once for the gradient norm (a
  /// non-finite one stops it before the update). Over several ranks the loss read is the global batch's, the
  /// gradients are summed over the ranks after backward, and so every rank takes the same decisions and update.
  StepInfo train_step(const data::TextImageBatch& b) {
    StepInfo info;
    info.lr = optimizer_->current_lr();
    const Tensor<float> loss = forward_loss(b);
    const Tensor<float> shown = comm().size() > 1 ? dist::global_loss(comm(), loss) : loss.detach();
    const std::vector<float> read =
        concat(std::vector<Tensor<float>>{shown.reshape({1}), model_.logit_scale.detach(),
                                          model_.logit_bias.detach()})
            .to_vector();
    info.loss = read[0];
    info.t = std::exp(double(read[1]));
    info.b = read[2];
    SIGLITE_CHECK(std::isfinite(info.loss), "train: the loss is ", info.loss, " at step ", step_ + 1,
                  "; stopped without updating the model",
                  opt_.out_dir.empty() ? "" : detail::cat(" (the last checkpoint in ", opt_.out_dir, " is intact)"));
    loss.backward();
    dist::all_reduce_gradients(comm(), trainable_);
    info.grad_norm = opt_.clip_norm > 0 ? optim::clip_grad_norm(*optimizer_, opt_.clip_norm) : optim::grad_norm(*optimizer_);
    SIGLITE_CHECK(std::isfinite(info.grad_norm), "train: the gradient norm is ", info.grad_norm, " at step ", step_ + 1,
                  "; stopped without updating the model",
                  opt_.out_dir.empty() ? "" : detail::cat(" (the last checkpoint in ", opt_.out_dir, " is intact)"));
    optimizer_->step();
    optimizer_->zero_grad();
    ++step_;
    info.step = step_;
    info.planned_steps = planned_;
    return info;
  }

  /// The ranks this trainer is one of: those given to distribute(), or this process alone.
  dist::Communicator& comm() { return comm_ ? *comm_ : self_; }
  /// Whether this rank writes checkpoints: with out_dir, on rank 0.
  bool writes() { return !opt_.out_dir.empty() && comm().rank() == 0; }

  models::SigLIP<float>& model_;
  const data::Dataset& ds_;
  const data::Tokenizer& tok_;
  TrainOptions opt_;
  std::unique_ptr<optim::AdamW> optimizer_;
  std::vector<Tensor<float>> trainable_;  // the parameters the optimizer updates, in its order
  dist::SelfCommunicator self_;
  dist::Communicator* comm_ = nullptr;
  int64_t check_sync_every_ = 0;
  std::vector<Callback> callbacks_;
  std::function<double()> clock_ = [] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  };
  Tensor<float> cache_;                             // SigLiT: rows of frozen image embeddings, on the device
  int64_t cached_ = 0;                              // rows of cache_ in use
  std::unordered_map<int64_t, int64_t> cache_row_;  // dataset index -> its row
  int64_t step_ = 0, planned_ = 0, first_step_ = 0, prior_pairs_ = 0;
  double prior_seconds_ = 0;
  static_assert(std::atomic<bool>::is_always_lock_free, "request_stop must be safe in a signal handler");
  std::atomic<bool> stop_{false};
};

}  // namespace siglite::train
