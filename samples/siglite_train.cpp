// siglite-train: trains SigLIP (or SigLiT with --lock-image) on Fashion-MNIST, the captioned
// shapes or a JSONL manifest, with a progress line, a metrics JSONL file and a JSON summary. Under mpirun (a build
// with MPI) the ranks train data parallel: rank 0 alone prints, writes and evaluates.
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <siglite/data/fashion_mnist.hpp>
#include <siglite/data/manifest.hpp>
#include <siglite/data/shapes.hpp>
#include <siglite/eval/zero_shot.hpp>
#include <siglite/io/plot.hpp>
#include <siglite/siglite.hpp>
#include <siglite/train/trainer.hpp>
#include <string>
#include <thread>

#include "cli.hpp"
#ifdef SIGLITE_WITH_MPI
#include <siglite/dist/mpi.hpp>
#endif


using namespace siglite;

namespace {

constexpr const char* kUsage = R"(usage: siglite-train --data fmnist|shapes|MANIFEST.jsonl [options]
  --preset NAME          model preset: fmnist-tiny (default), bench-tiny, b16
  --config FILE          model config.json (HF form) instead of a preset
  --batch N              batch size (default 256)
  --steps N              number of steps; or
  --minutes M            a wall-clock budget (the schedule is planned to fit it)
  --lr X                 peak learning rate (default 1e-3)
  --wd X                 weight decay of weight matrices (default 1e-4)
  --warmup F             warmup, as a fraction of the planned steps (default 0.1)
  --bias-lr-mult X       learning-rate multiplier of t' and b (default 1)
  --loss NAME            tiled (default), naive, softmax; under mpirun chunked or gathered (one process: as tiled)
  --check-sync N         under mpirun, check every N steps that the ranks' weights are identical
  --device NAME          cpu (default) or cuda[:N]
  --precision P          fp32 (default) or tf32: float32 GEMMs on TF32 tensor cores (CUDA); bf16 is not done yet
  --threads N            OpenMP threads (default: all cores)
  --seed N               seed of initialisation and data order (default 0)
  --out DIR              checkpoint directory (config.json, model.safetensors, optimizer, tokenizer, metrics)
  --checkpoint-every N   also write the checkpoint every N steps
  --resume DIR           continue the run saved in DIR
  --lock-image DIR       SigLiT: load the image tower from checkpoint DIR and freeze it
  --eval-limit N         zero-shot evaluation on the first N test images (default: all)
  --skip-bad             skip bad manifest records instead of stopping
)";

const cli::Spec kCli = {"siglite-train",
                        kUsage,
                        {"data", "preset", "config", "batch", "steps", "minutes", "lr", "wd", "warmup",
                         "bias-lr-mult", "loss", "check-sync", "device", "precision", "threads", "seed", "out", "checkpoint-every", "resume", "lock-image",
                         "eval-limit"},
                        {"skip-bad"},
                        {},
                        {"data"}};

/// The captions a word tokenizer is built from: all training captions of a dataset with a
/// finite set of them, or a large sample.
std::vector<std::string> tokenizer_corpus(const data::Dataset& ds) {
  std::vector<std::string> out;
  const int64_t n = std::min<int64_t>(ds.size(), 20000);
  for (int64_t i = 0; i < n; ++i) out.push_back(ds.get(i).caption);
  return out;
}

/// The signal that asked the run to stop (SIGINT or SIGTERM), 0 while none has.
std::atomic<int> stop_signal{0};

/// SIGINT and SIGTERM are blocked in every thread (this runs before any other starts, and threads inherit the mask)
/// and taken by one thread of their own with sigwait: no thread that computes is ever interrupted by a handler. The
/// first one is noted for the step callback, which asks the trainer to stop after its step; then the two are let
/// through to that thread with their default action, so a second one ends the process at once (the checkpoint on
/// disk stays whole either way). A handler interrupting the computing threads instead corrupted the heap in about one
/// SIGTERM-stopped run in fifteen (glibc: "corrupted size vs. prev_size", in a free inside oneDNN's sgemm).
void watch_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread([set] {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) return;
    stop_signal = sig;
    pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
    for (;;) pause();  // this thread stays, so that the next signal has one to reach
  }).detach();
}

/// Keeps the lines of the metrics file `path` up to step `step` (those a resumed run does not repeat), dropping any
/// later ones and an unfinished last line that a killed run left.
void keep_metrics_until(const std::filesystem::path& path, int64_t step) {
  std::ifstream in(path);
  if (!in) return;
  std::string kept, line;
  while (std::getline(in, line)) {
    if (in.eof()) break;  // no newline after it: a line the killed run did not finish
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (!j.is_object() || !j.contains("step") || !j.at("step").is_number_integer()) break;
    if (j.at("step").get<int64_t>() > step) break;
    kept += line + "\n";
  }
  write_file_atomic(path, kept, "siglite-train");
}

/// Whether this process is one rank of an mpirun job (Open MPI's, or a PMI launcher's).
bool launched_by_mpirun() {
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"})
    if (std::getenv(v) != nullptr) return true;
  return false;
}

std::string clock_text(double s) {
  const auto t = static_cast<long long>(s);
  char buf[32];
  std::snprintf(buf, sizeof buf, "%lld:%02lld", t / 60, t % 60);
  return buf;
}

/// Writes loss.png and t_b.png (this run's steps) and similarity.png (the logits of the first 32 training
/// pairs under the trained model) into `dir`.
void write_plots(const std::filesystem::path& dir, const std::vector<train::StepInfo>& history,
                 const std::string& loss_name, const models::SigLIP<float>& model, const data::Dataset& ds,
                 const data::Tokenizer& tok) {
  if (!history.empty()) {
    io::Series loss{"loss", {}, io::series_colour(0)}, t{"t", {}, io::series_colour(1)}, b{"b", {}, io::series_colour(2)};
    for (const train::StepInfo& s : history) {
      loss.points.emplace_back(double(s.step), s.loss);
      t.points.emplace_back(double(s.step), s.t);
      b.points.emplace_back(double(s.step), s.b);
    }
    io::write_line_plot(dir / "loss.png", {{loss_name + " loss", "step", {loss}}});
    io::write_line_plot(dir / "t_b.png", {{"temperature t = exp(t')", "step", {t}}, {"bias b", "step", {b}}});
  }
  NoGradGuard no_grad;
  const int64_t n = std::min<int64_t>(32, ds.size());
  std::vector<int64_t> idx;
  for (int64_t i = 0; i < n; ++i) idx.push_back(i);
  const data::Batch batch = data::make_batch(ds, idx);
  const Tensor<float> img = model.image_embeddings(batch.images.to(model.device()));  // [n, E], normalised
  const Tensor<float> txt = model.text_embeddings(
      tok.batch(batch.captions, model.config().text.max_position_embeddings).to(model.device()));
  const Tensor<float> logits = matmul(img, txt.t()) * exp(model.logit_scale) + model.logit_bias;  // [n, n]
  io::Heatmap h;
  h.values = logits.contiguous().to_vector();
  h.rows = h.cols = n;
  h.title = "logits t x_i.y_j + b of the first " + std::to_string(n) + " training pairs";
  h.row_label = "image i";
  h.col_label = "text j";
  io::write_heatmap(dir / "similarity.png", h);
}

}  // namespace

int main(int argc, char** argv) {
  watch_stop_signals();
#ifdef SIGLITE_WITH_MPI
  std::unique_ptr<dist::MpiCommunicator> world;
  if (launched_by_mpirun()) world = std::make_unique<dist::MpiCommunicator>();
#endif
  dist::Communicator* ranks = nullptr;
  try {
#ifdef SIGLITE_WITH_MPI
    ranks = world.get();
#else
    SIGLITE_CHECK(!launched_by_mpirun(), "siglite-train: started by mpirun, but built without MPI (SIGLITE_WITH_MPI); "
                                         "install libopenmpi-dev and build again");
#endif
    const bool rank0 = ranks == nullptr || ranks->rank() == 0;
    const cli::Args args = cli::parse(kCli, argc, argv);
    const Device device = cli::device(args);
    cli::precision(args);
    const std::string data_name = args.get("data", "");
    const auto seed = static_cast<uint64_t>(args.num("seed", 0));
    models::SiglipConfig config = args.has("config") ? models::SiglipConfig::load(args.get("config", ""))
                                                      : models::SiglipConfig::preset(args.get("preset", "fmnist-tiny"));
    std::unique_ptr<data::Dataset> train_set, test_set;
    std::vector<std::string> eval_templates;
    if (data_name == "fmnist") {
      train_set = std::make_unique<data::FashionMnist>(data::FashionMnist::default_dir, data::Split::train, seed);
      test_set = std::make_unique<data::FashionMnist>(data::FashionMnist::default_dir, data::Split::test, seed);
      eval_templates = data::FashionMnist::eval_templates();
    } else if (data_name == "shapes") {
      train_set = std::make_unique<data::Shapes>(seed, data::Split::train, config.vision.image_size);
    } else {
      train_set = std::make_unique<data::JsonlManifest>(data_name, config.vision.image_size, config.vision.num_channels,
                                                        args.has("skip-bad"));
    }

    const std::string out = args.get("out", "");
    std::shared_ptr<data::WordTokenizer> tok;
    if (args.has("resume")) {
      tok = std::make_shared<data::WordTokenizer>(
          data::WordTokenizer::load(std::filesystem::path(args.get("resume", "")) / data::kWordTokenizerFile));
    } else {
      tok = std::make_shared<data::WordTokenizer>(data::WordTokenizer::build(tokenizer_corpus(*train_set)));
    }
    SIGLITE_CHECK(tok->vocab_size() <= config.text.vocab_size, "siglite-train: the captions have ", tok->vocab_size(),
                  " distinct words, more than the model's vocabulary of ", config.text.vocab_size,
                  "; use a config with a larger text_config.vocab_size");
    models::SigLIP<float> model(config, seed);
    if (args.has("lock-image")) {
      const auto pretrained = io::load_pretrained(args.get("lock-image", ""));
      io::TensorMap vision;
      for (const auto& [name, t] : pretrained->state_dict())
        if (name.rfind("vision_model.", 0) == 0) vision.emplace(name, t);
      model.load_state_dict(vision, false);
    }
    model.to(device);  // before the Trainer makes the optimizer

    train::TrainOptions opt;
    opt.batch_size = static_cast<int64_t>(args.num("batch", 256));
    opt.steps = static_cast<int64_t>(args.num("steps", 0));
    opt.minutes = args.num("minutes", 0);
    opt.lr = args.num("lr", 1e-3);
    opt.weight_decay = args.num("wd", 1e-4);
    opt.warmup_fraction = args.num("warmup", 0.1);
    opt.bias_lr_mult = args.num("bias-lr-mult", 1.0);
    opt.loss = parse<train::LossKind>(args.get("loss", "tiled"));
    opt.seed = seed;
    opt.lock_image = args.has("lock-image");
    opt.out_dir = out;
    opt.checkpoint_every = static_cast<int64_t>(args.num("checkpoint-every", 0));
    if (opt.steps == 0 && opt.minutes == 0) opt.minutes = 10;

    train::Trainer trainer(model, *train_set, *tok, opt);
    if (ranks) trainer.distribute(*ranks, static_cast<int64_t>(args.num("check-sync", 0)));
    if (args.has("resume")) trainer.resume(args.get("resume", ""));
    std::ofstream metrics;
    const std::filesystem::path metrics_path = std::filesystem::path(out) / "metrics.jsonl";
    if (!out.empty() && rank0) {
      std::filesystem::create_directories(out);
      tok->save(std::filesystem::path(out) / data::kWordTokenizerFile);
      if (args.has("resume")) keep_metrics_until(metrics_path, trainer.step());
      errno = 0;
      metrics.open(metrics_path, args.has("resume") ? std::ios::app : std::ios::trunc);
      if (!metrics.is_open()) {
        const std::string why = siglite::detail::system_error_text();
        std::fprintf(stderr, "siglite-train: metrics not written: cannot open %s%s\n", metrics_path.c_str(),
                     why.c_str());
      }
    }
    const bool tty = rank0 && isatty(fileno(stderr));
    trainer.add_callback([&](const train::StepInfo& s) {
      if (stop_signal != 0) trainer.request_stop();
      if (metrics.is_open()) {
        errno = 0;
        metrics << nlohmann::json{{"step", s.step},   {"loss", s.loss}, {"t", s.t},
                                  {"b", s.b},         {"lr", s.lr},     {"grad_norm", s.grad_norm},
                                  {"pairs_per_s", s.pairs_per_s}, {"elapsed_s", s.elapsed_s}}
                       .dump()
                << '\n'
                << std::flush;  // on disk before the step's checkpoint: a killed run loses no line it saved
        if (!metrics) {  // a full disk, say: the checkpoints still hold the run, which goes on without its metrics
          const std::string why = siglite::detail::system_error_text();
          std::fprintf(stderr, "siglite-train: metrics not written from step %lld on: %s%s\n",
                       static_cast<long long>(s.step), metrics_path.c_str(), why.c_str());
          metrics.close();
        }
      }
      if (rank0 && (tty || s.step % 10 == 0 || s.step == s.planned_steps)) {
        std::fprintf(stderr, "%sstep %lld/%lld | %.1f pairs/s | loss %.4f | t %.2f b %.2f | lr %.2e | left %s%s",
                     tty ? "\r" : "", static_cast<long long>(s.step), static_cast<long long>(s.planned_steps),
                     s.pairs_per_s, s.loss, s.t, s.b, s.lr, clock_text(s.eta_s).c_str(), tty ? "   " : "\n");
        std::fflush(stderr);
      }
    });
    const train::TrainResult r = trainer.run();
    if (tty) std::fprintf(stderr, "\n");
    if (r.stopped) {
      if (!rank0) return stop_signal != 0 ? 128 + stop_signal : 0;
      const char* name = stop_signal == SIGINT    ? "SIGINT"
                         : stop_signal == SIGTERM ? "SIGTERM"
                                                  : "a signal to another rank";
      if (out.empty())
        std::fprintf(stderr, "siglite-train: stopped by %s after step %lld; nothing saved (no --out)\n", name,
                     static_cast<long long>(r.steps));
      else
        std::fprintf(stderr,
                     "siglite-train: stopped by %s after step %lld; the checkpoint in %s holds it: continue with the "
                     "same command and --resume %s\n",
                     name, static_cast<long long>(r.steps), out.c_str(), out.c_str());
      return stop_signal != 0 ? 128 + stop_signal : 130;
    }
    if (!rank0) return 0;  // the other ranks' weights are rank 0's, which evaluates them
    if (!out.empty()) {
      try {  // the checkpoint is already saved: a plot that cannot be written is worth a warning, not the run
        write_plots(out, r.history, to_string(opt.loss), model, *train_set, *tok);
      } catch (const std::exception& e) {
        std::fprintf(stderr, "siglite-train: plots not written: %s\n", e.what());
      }
    }

    nlohmann::json summary = {{"steps", r.steps},  {"pairs_per_s", r.pairs_per_s}, {"final_loss", r.final_loss},
                              {"t", r.t},          {"b", r.b},                     {"seconds", r.seconds}};
    if (test_set) {
      std::fprintf(stderr, "zero-shot evaluation on %lld test images...\n",
                   static_cast<long long>(args.has("eval-limit") ? args.num("eval-limit", 0) : test_set->size()));
      const eval::ZeroShotResult z =
          eval::zero_shot(model, *tok, *test_set, eval_templates, static_cast<int64_t>(args.num("eval-limit", 0)));
      summary["zero_shot_top1"] = z.top1;
      summary["zero_shot_top5"] = z.top5;
    }
    std::cout << summary.dump() << std::endl;
    return 0;
  } catch (const std::exception& e) {
#ifdef SIGLITE_WITH_MPI
    if (world && world->size() > 1) world->abort_job(e.what());  // ends every rank now, rather than leave them waiting
#endif
    std::fprintf(stderr, "\n%s\n", e.what());
    return 1;
  }
}
