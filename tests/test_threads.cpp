// Threads: the loader's prefetch thread, a dataset read from several threads, the thread-local scopes (NoGradGuard,
// InferenceMode and its packed-weight cache) and two models trained at once. Besides the suite, this file is the
// ThreadSanitizer build's test program (tests/run.sh), which reports any data race among the threads it starts.
#include <catch2/catch.hpp>
#include <siglite/siglite.hpp>
#include <siglite/eval/zero_shot.hpp>
#include <siglite/train/trainer.hpp>

#include <exception>
#include <string>
#include <thread>
#include <vector>

#include "toy_data.hpp"

using namespace siglite;
using Catch::Contains;
using siglite::testing::flat_parameters;
using siglite::testing::Quadrants;
using siglite::testing::tiny_config;
using siglite::testing::tokenizer;

namespace {

constexpr int64_t kLength = 6;  // tiny_config's text length

/// Quadrants whose example `broken` cannot be read.
class Broken : public Quadrants {
 public:
  explicit Broken(int64_t broken) : broken_(broken) {}
  data::Example get(int64_t i) const override {
    SIGLITE_CHECK(i != broken_, "Broken: example ", i, " cannot be read");
    return Quadrants::get(i);
  }

 private:
  int64_t broken_;
};

void check_same(const data::TextImageBatch& got, const data::TextImageBatch& want) {
  CHECK(got.indices == want.indices);
  CHECK(got.images.to_vector() == want.images.to_vector());
  CHECK(got.ids.to_vector() == want.ids.to_vector());
  CHECK(got.labels.to_vector() == want.labels.to_vector());
  CHECK(got.captions == want.captions);
}

/// Runs `f` on a second thread while `g` runs on this one; rethrows what either threw.
template <typename F, typename G>
void at_once(F&& f, G&& g) {
  std::exception_ptr failure;
  std::thread other([&] {
    try {
      f();
    } catch (...) {
      failure = std::current_exception();
    }
  });
  try {
    g();
  } catch (...) {
    other.join();
    throw;
  }
  other.join();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace

TEST_CASE("loader: the prefetch thread gives the batches built on the calling thread, a shard its rows",
          "[threads][data]") {
  const Quadrants ds;
  const data::WordTokenizer tok = tokenizer(ds);
  const uint64_t seed = 3;
  data::Loader whole(ds, tok, 8, kLength, seed, 2);
  data::Loader half(ds, tok, 8, kLength, seed, 2, 3, data::Shard{1, 2});
  for (int64_t step = 2; step < 12; ++step) {  // crosses an epoch (8 batches of 8)
    INFO("step " << step);
    const std::vector<int64_t> indices = data::batch_indices(ds.size(), 8, seed, step);
    check_same(whole.next(), data::Loader::load(ds, tok, indices, kLength));
    check_same(half.next(), data::Loader::load(ds, tok, {indices.begin() + 4, indices.end()}, kLength));
  }
}

TEST_CASE("loader: an error on the prefetch thread reaches next(); a loader dropped while its thread waits ends",
          "[threads][data]") {
  const Broken ds(10);
  const data::WordTokenizer tok = tokenizer(Quadrants());
  {
    data::Loader loader(ds, tok, 16, kLength, 1);
    bool thrown = false;
    for (int step = 0; step < 4 && !thrown; ++step) {  // example 10 is in one of the first epoch's 4 batches
      try {
        loader.next();
      } catch (const Error& e) {
        CHECK_THAT(std::string(e.what()), Contains("example 10 cannot be read"));
        thrown = true;
      }
    }
    CHECK(thrown);
  }
  // A loader whose queue is full waits on its condition variable; dropping it must wake and join the thread (one
  // that did not would hang here, and ctest's timeout would fail the test).
  const Quadrants whole;
  {
    data::Loader idle(whole, tok, 4, kLength, 1, 100, 2);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

TEST_CASE("datasets: get() from four threads at once gives the examples read one by one", "[threads][data]") {
  const data::Shapes train(6);
  std::vector<std::vector<float>> serial, parallel(64);
  for (int64_t i = 0; i < 64; ++i) serial.push_back(train.get(i).image.to_vector());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int64_t i = t; i < 64; i += 4) parallel[static_cast<size_t>(i)] = train.get(i).image.to_vector();
    });
  for (auto& th : threads) th.join();
  CHECK(serial == parallel);
}

TEST_CASE("scopes: NoGradGuard and InferenceMode hold on their own thread; a model serves both at once",
          "[threads][autograd]") {
  models::SigLIP<float> model(tiny_config(), 4);
  Generator gen(5);
  const Tensor<float> images = Tensor<float>::randn({4, 3, 8, 8}, gen);
  const Tensor<int64_t> ids = Tensor<int64_t>::from_vector({2, 3, 4, 5, 6, 1, 7, 8, 9, 1, 1, 1, 3, 3, 3, 3, 3, 1,
                                                            10, 11, 12, 13, 14, 1},
                                                           {4, kLength});
  // Catch's assertions are for the main thread: the threads note what they saw, and it is checked after they end.
  struct Seen {
    bool inference = false, no_grad = false, grad = false;
  };
  const auto infer = [&](Seen& seen) {
    InferenceMode inference;
    seen.inference = InferenceMode::active();
    seen.no_grad = !grad_enabled();
    return model.forward(images, ids).logits_per_text.to_vector();
  };
  const auto train_step = [&](Seen& seen) {  // this thread alone writes gradients
    seen.inference = InferenceMode::active();
    seen.grad = grad_enabled();
    model.zero_grad();
    const auto out = model.forward(images, ids);
    const Tensor<float> loss = loss::sigmoid_loss(out.image_embeds, out.text_embeds, model.logit_scale,
                                                  model.logit_bias);
    loss.backward();
    std::vector<float> g{loss.item()};
    for (const auto& [name, p] : model.named_parameters())
      for (float v : p.grad().to_vector()) g.push_back(v);
    return g;
  };
  Seen alone;
  const std::vector<float> inferred = infer(alone);
  CHECK(alone.inference);
  CHECK(alone.no_grad);
  const std::vector<float> trained = train_step(alone);
  CHECK(alone.grad);
  for (int round = 0; round < 3; ++round) {
    INFO("round " << round);
    std::vector<float> a, b;
    Seen inferring, training;
    bool guarded_after = false;
    at_once(
        [&] {
          NoGradGuard no_grad;
          for (int k = 0; k < 3; ++k) a = infer(inferring);
          guarded_after = !grad_enabled();
        },
        [&] {
          for (int k = 0; k < 3; ++k) b = train_step(training);
        });
    CHECK(inferring.inference);
    CHECK(inferring.no_grad);
    CHECK(guarded_after);  // the InferenceMode scope ended, the thread's NoGradGuard still holds
    CHECK_FALSE(training.inference);
    CHECK(training.grad);
    CHECK(a == inferred);
    CHECK(b == trained);
  }
  CHECK(grad_enabled());
  CHECK_FALSE(InferenceMode::active());
}

TEST_CASE("train: two models trained on two threads at once each give their run alone, bit for bit",
          "[threads][train]") {
  const Quadrants ds;
  const data::WordTokenizer tok = tokenizer(ds);
  const auto run = [&](uint64_t seed, std::vector<float>& weights, std::vector<double>& losses) {
    models::SigLIP<float> model(tiny_config(), seed);
    train::TrainOptions o;
    o.batch_size = 16;
    o.steps = 8;
    o.lr = 3e-3;
    o.seed = seed;
    for (const train::StepInfo& s : train::Trainer(model, ds, tok, o).run().history) losses.push_back(s.loss);
    NoGradGuard no_grad;
    weights = flat_parameters(model);
    const eval::RetrievalResult r = eval::retrieval(model, tok, ds, ds.size());
    losses.push_back(r.i2t_r1);
  };
  std::vector<float> alone1, alone2, both1, both2;
  std::vector<double> losses_alone1, losses_alone2, losses_both1, losses_both2;
  run(1, alone1, losses_alone1);
  run(2, alone2, losses_alone2);
  at_once([&] { run(2, both2, losses_both2); }, [&] { run(1, both1, losses_both1); });
  CHECK(both1 == alone1);
  CHECK(both2 == alone2);
  CHECK(losses_both1 == losses_alone1);
  CHECK(losses_both2 == losses_alone2);
}
