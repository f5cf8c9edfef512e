// The training loop: it learns, a resumed run equals an uninterrupted one, a non-finite loss stops
// cleanly, and SigLiT leaves the image tower untouched. Evaluation: prompt files, the held-out and
// seen pair scores of the captioned shapes.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <siglite/siglite.hpp>
#include <siglite/train/trainer.hpp>
#include <siglite/eval/shapes.hpp>
#include <siglite/eval/zero_shot.hpp>

#include "temp_dir.hpp"
#include "toy_data.hpp"

using namespace siglite;
using Catch::Contains;
using siglite::testing::flat_parameters;
using siglite::testing::Quadrants;
using siglite::testing::tiny_config;
using siglite::testing::tokenizer;

namespace {

train::TrainOptions options(int64_t steps) {
  train::TrainOptions o;
  o.batch_size = 16;
  o.steps = steps;
  o.lr = 3e-3;
  o.seed = 5;
  return o;
}

}  // namespace

TEST_CASE("trainer: a time budget is planned again from whole steps and stops within the budget", "[train]") {
  const Quadrants ds;
  const data::WordTokenizer tok = tokenizer(ds);
  models::SigLIP<float> model(tiny_config(), 3);
  train::TrainOptions o = options(0);
  o.minutes = 6.0 / 60;
  train::Trainer trainer(model, ds, tok, o);
  // A clock that advances 25 ms each time it is read: the plan no longer depends on the machine or its load. The
  // probe reads it twice a step and the loop about four times, so whole steps are four times slower than the probe
  // says, which the re-plans must correct.
  double now = 0;
  trainer.set_clock([&now] { return now += 0.025; });
  const train::TrainResult r = trainer.run();
  REQUIRE(r.history.size() > 14);
  CHECK(r.history.front().planned_steps > 2 * r.history.back().planned_steps);  // the probe's plan was corrected
  CHECK(r.history.back().elapsed_s > 0.9 * 6.0);                               // and the budget used
  // The probe's plan holds for 13 steps; it may change after them and once more halfway, not otherwise.
  int changes = 0;
  for (size_t k = 1; k < r.history.size(); ++k) {
    const bool changed = r.history[k].planned_steps != r.history[k - 1].planned_steps;
    if (k < 13) CHECK_FALSE(changed);
    changes += changed;
  }
  CHECK(changes <= 2);
  // The run stops within a step of the budget, never after its plan.
  const double last_step_s = r.history.back().elapsed_s - r.history[r.history.size() - 2].elapsed_s;
  CHECK(r.history.back().elapsed_s <= 6.0 + last_step_s);
  CHECK(r.history.back().step <= r.history.back().planned_steps);
}

TEST_CASE("train: the loss falls and zero-shot classification learns the classes", "[train]") {
  const Quadrants ds;
  const data::WordTokenizer tok = tokenizer(ds);
  models::SigLIP<float> model(tiny_config(), 1);
  train::TrainOptions o = options(120);
  o.lr = 1e-2;
  train::Trainer trainer(model, ds, tok, o);
  const train::TrainResult r = trainer.run();
  REQUIRE(r.history.size() == 120);
  CHECK(r.history.back().loss < 0.5 * r.history.front().loss);
  const eval::ZeroShotResult z = eval::zero_shot(model, tok, ds, {"a {} tile"});
  CHECK(z.top1 > 0.9);
  // Captions repeat per class: a tie with an identical caption counts as found, one with another class's as a miss,
  // so a text tower that embeds the four captions alike would score 0 here.
  CHECK(eval::retrieval(model, tok, ds, ds.size()).i2t_r1 > 0.9);
}

TEST_CASE("train: a resumed run equals an uninterrupted one", "[train]") {
  const Quadrants ds;
  const data::WordTokenizer tok = tokenizer(ds);
  models::SigLIP<float> straight(tiny_config(), 2);
  const train::TrainResult full = train::Trainer(straight, ds, tok, options(6)).run();

  const TempDir dir;
  models::SigLIP<float> first(tiny_config(), 2);
  train::TrainOptions part = options(6);
  part.stop_at = 3;
  part.out_dir = dir.path.string();
  train::Trainer(first, ds, tok, part).run();

  models::SigLIP<float> second(tiny_config(), 99);  // other initial weights: all must come from the checkpoint
  train::Trainer resumed(second, ds, tok, options(6));
  resumed.resume(dir.path);
  const train::TrainResult rest = resumed.run();
  REQUIRE(rest.history.size() == 3);
  for (size_t k = 0; k < 3; ++k) CHECK(rest.history[k].loss == full.history[k + 3].loss);
  CHECK(flat_parameters(second) == flat_parameters(straight));
}

TEST_CASE("train: request_stop ends the run after its step, with that step's checkpoint", "[train]") {
  const Quadrants ds;
  const data::WordTokenizer tok = tokenizer(ds);
  models::SigLIP<float> model(tiny_config(), 2);
  const TempDir dir;
  train::TrainOptions o = options(10);
  o.out_dir = dir.path.string();
  train::Trainer trainer(model, ds, tok, o);
  trainer.add_callback([&](const train::StepInfo& s) {
    if (s.step == 3) trainer.request_stop();
  });
  const train::TrainResult r = trainer.run();
  CHECK(r.stopped);
  CHECK(r.steps == 3);
  std::ifstream state(dir / "trainer_state.json");
  CHECK(nlohmann::json::parse(state).at("step") == 3);
  CHECK_FALSE(std::filesystem::exists(dir / train::kCheckpointStaging));
}

TEST_CASE("train: a checkpoint write cut short is dropped, one cut while moving in is completed", "[train]") {
  const Quadrants ds;
  const data::WordTokenizer tok = tokenizer(ds);
  const TempDir dir, later;
  const auto train_to = [&](int64_t steps, const std::filesystem::path& out) {
    models::SigLIP<float> m(tiny_config(), 2);
    train::TrainOptions o = options(6);
    o.stop_at = steps;
    o.out_dir = out.string();
    train::Trainer(m, ds, tok, o).run();
    return flat_parameters(m);
  };
  const std::vector<float> at2 = train_to(2, dir.path), at4 = train_to(4, later.path);
  const auto resumed_step = [&] {
    models::SigLIP<float> m(tiny_config(), 99);
    train::Trainer t(m, ds, tok, options(6));
    t.resume(dir.path);
    CHECK_FALSE(std::filesystem::exists(dir / train::kCheckpointStaging));
    return std::make_pair(t.step(), flat_parameters(m));
  };
  namespace fs = std::filesystem;
  const fs::path staging = dir / train::kCheckpointStaging;
  // Killed while writing: the step-4 files are in the staging folder, but not its marker.
  fs::create_directories(staging);
  for (const char* f : {"model.safetensors", "optimizer.safetensors", "trainer_state.json"})
    fs::copy_file(later / f, staging / f);
  CHECK(resumed_step() == std::make_pair(int64_t(2), at2));
  // Killed while moving in: the marker is written and the model already moved; the rest follows on resume.
  fs::create_directories(staging);
  for (const char* f : {"optimizer.safetensors", "trainer_state.json"}) fs::copy_file(later / f, staging / f);
  fs::copy_file(later / "model.safetensors", dir / "model.safetensors", fs::copy_options::overwrite_existing);
  std::ofstream(staging / train::kCheckpointCommitted)
      << "config.json\nmodel.safetensors\noptimizer.safetensors\ntrainer_state.json\n";
  CHECK(resumed_step() == std::make_pair(int64_t(4), at4));
}

TEST_CASE("train: a non-finite loss or gradient norm stops the run and keeps the last good checkpoint", "[train]") {
  const Quadrants ds;
  const data::WordTokenizer tok = tokenizer(ds);
  models::SigLIP<float> model(tiny_config(), 3);
  const TempDir dir;
  train::TrainOptions o = options(10);
  o.lr = 1e30;  // step 1 warms up at lr 0; step 2 sends the weights to infinity
  o.out_dir = dir.path.string();
  o.checkpoint_every = 1;
  CHECK_THROWS_WITH(train::Trainer(model, ds, tok, o).run(),
                    Contains("at step 3; stopped without updating the model") && Contains("is intact"));
  std::ifstream state(dir / "trainer_state.json");
  CHECK(nlohmann::json::parse(state).at("step") == 2);
  // A NaN t' makes the loss itself NaN: stopped before backward.
  models::SigLIP<float> broken(tiny_config(), 3);
  kernels::on<float>(broken.logit_scale.device())
      .fill(broken.logit_scale.device_ptr(), 1, std::numeric_limits<float>::quiet_NaN());
  o.lr = 1e-3;
  o.out_dir.clear();
  CHECK_THROWS_WITH(train::Trainer(broken, ds, tok, o).run(),
                    Contains("train: the loss is ") && Contains("nan at step 1; stopped without updating the model"));
  CHECK(std::isnan(broken.logit_scale.item()));
}

TEST_CASE("train: SigLiT trains only the text tower, t' and b", "[train]") {
  const Quadrants ds;
  const data::WordTokenizer tok = tokenizer(ds);
  models::SigLIP<float> model(tiny_config(), 4);
  const std::vector<float> vision_before = flat_parameters(model, "vision_model."), text_before = flat_parameters(model, "text_model.");
  train::TrainOptions o = options(5);
  o.lock_image = true;
  train::Trainer trainer(model, ds, tok, o);
  trainer.run();
  CHECK(flat_parameters(model, "vision_model.") == vision_before);
  CHECK(flat_parameters(model, "text_model.") != text_before);
  for (const auto& group : trainer.optimizer().param_groups())
    for (const auto& [name, p] : group.params) CHECK(name.rfind("vision_model.", 0) != 0);
}

TEST_CASE("train: bad options", "[train][errors]") {
  const Quadrants ds;
  const data::WordTokenizer tok = tokenizer(ds);
  models::SigLIP<float> model(tiny_config(), 5);
  train::TrainOptions o = options(1);
  CHECK_THROWS_WITH(parse<train::LossKind>("hinge"), Contains("loss 'hinge' is not naive, tiled, softmax, chunked or gathered"));
  CHECK(parse<train::LossKind>("naive") == train::LossKind::Naive);
  CHECK(to_string(train::LossKind::Softmax) == "softmax");
  o = options(0);
  CHECK_THROWS_WITH(train::Trainer(model, ds, tok, o), Contains("steps or a time budget"));
  o = options(1);
  o.batch_size = 65;
  CHECK_THROWS_WITH(train::Trainer(model, ds, tok, o), Contains("batch size 65"));
  models::SiglipConfig wrong = tiny_config();
  wrong.vision.image_size = 16;
  models::SigLIP<float> other(wrong, 5);
  CHECK_THROWS_WITH(train::Trainer(other, ds, tok, options(1)), Contains("do not fit"));
}

TEST_CASE("eval: prompt templates from a file", "[eval]") {
  const TempDir dir;
  const auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir / name, std::ios::binary) << text;
    return dir / name;
  };
  CHECK(eval::read_templates(write("good.txt", "a photo of a {}\r\n\n   \n  {}, up close  \nthe {}")) ==
        std::vector<std::string>{"a photo of a {}", "{}, up close", "the {}"});
  const auto bad = write("bad.txt", "a {}\n\na photo\n");
  CHECK_THROWS_WITH(eval::read_templates(bad), Contains(bad.string() + ":3: template 'a photo' has no {}"));
  const auto blank = write("blank.txt", "\n  \n");
  CHECK_THROWS_WITH(eval::read_templates(blank), Contains(blank.string() + ": no templates"));
  CHECK_THROWS_WITH(eval::read_templates(dir / "absent.txt"), Contains("absent.txt: no such file"));
}

TEST_CASE("eval: shapes scores split held-out pairs from seen ones, by colour and by shape", "[eval]") {
  const data::Shapes ds(0, data::Split::test, 16, true, 80);  // every pair twice, 5 of the 40 held out
  const int64_t kinds = data::Shapes::num_kinds(), colours = data::Shapes::num_colours();
  const auto scores = [&](const std::function<int64_t(int64_t colour, int64_t kind)>& predict) {
    eval::ZeroShotResult z;
    z.count = ds.size();
    for (int64_t i = 0; i < ds.size(); ++i) z.predictions.push_back(predict(i % 40 / kinds, i % 40 % kinds));
    return eval::shapes_scores(ds, z);
  };
  const auto held = [&](int64_t c, int64_t k) { return ds.is_held_out(c, k); };

  eval::ShapesZeroShotResult r = scores([&](int64_t c, int64_t k) { return c * kinds + k; });
  CHECK(r.held_out.count == 10);
  CHECK(r.seen.count == 70);
  for (const eval::PairScores* p : {&r.held_out, &r.seen})
    CHECK((p->pair_top1 == 1 && p->colour_acc == 1 && p->shape_acc == 1));
  CHECK(r.chance_pair == 1.0 / 40);
  CHECK(r.chance_colour == 1.0 / 8);
  CHECK(r.chance_shape == 1.0 / 5);

  r = scores([&](int64_t c, int64_t k) { return c * kinds + (k + 1) % kinds; });  // right colour, wrong shape
  CHECK((r.held_out.pair_top1 == 0 && r.held_out.colour_acc == 1 && r.held_out.shape_acc == 0));
  CHECK((r.seen.pair_top1 == 0 && r.seen.colour_acc == 1 && r.seen.shape_acc == 0));

  r = scores([&](int64_t c, int64_t k) { return (c + 1) % colours * kinds + k; });  // right shape, wrong colour
  CHECK((r.held_out.colour_acc == 0 && r.held_out.shape_acc == 1));

  // Right only on held-out pairs; on seen ones, the colour is right for half the colours.
  r = scores([&](int64_t c, int64_t k) { return (held(c, k) || c % 2) ? c * kinds + k : (c + 1) * kinds + k; });
  CHECK((r.held_out.pair_top1 == 1 && r.held_out.colour_acc == 1));
  CHECK(r.seen.pair_top1 == Approx(r.seen.colour_acc));
  CHECK(r.seen.shape_acc == 1);
  CHECK(r.seen.pair_top1 < 1);

  eval::ZeroShotResult z;
  z.count = 2;
  z.predictions = {0, 40};
  CHECK_THROWS_WITH(eval::shapes_scores(ds, z), Contains("prediction 40 of example 1"));
  z.predictions = {0};
  CHECK_THROWS_WITH(eval::shapes_scores(ds, z), Contains("1 predictions for a count of 2"));
  CHECK_THROWS_WITH(eval::shapes_scores(data::Shapes(0), z), Contains("train split"));
}

TEST_CASE("eval: retrieval places each item among the others, a tie counting as found only within its group",
          "[eval]") {
  // Text 2 repeats text 0 (and image 2 image 0), so image 0 and image 2 each tie their own caption with the other's.
  const Tensor<float> images = Tensor<float>::from_vector({1, 0, 0, 1, 1, 0, 0.6f, 0.8f}, {4, 2});
  const Tensor<float> texts = Tensor<float>::from_vector({1, 0, 0, 1, 1, 0, -1, 0}, {4, 2});
  // Items 0 and 2 of one group: their ties are found.
  const eval::RetrievalResult grouped = eval::retrieval(images, texts, {7, 1, 7, 3});
  CHECK(grouped.i2t_r1 == 0.75);  // image 3 scores texts 1, 0 and 2 above its own
  CHECK(grouped.i2t_r5 == 1.0);
  CHECK(grouped.t2i_r1 == 0.75);  // image 1 scores text 3 above image 3 does
  CHECK(grouped.t2i_r5 == 1.0);
  CHECK(grouped.t2i_r10 == 1.0);
  // Every item its own group: the ties of 0 and 2 are misses at 1, found at 5.
  const eval::RetrievalResult distinct = eval::retrieval(images, texts);
  CHECK(distinct.i2t_r1 == 0.25);
  CHECK(distinct.i2t_r5 == 1.0);
  CHECK(distinct.t2i_r1 == 0.25);
  CHECK(distinct.t2i_r5 == 1.0);
  // A text tower that embeds every caption alike finds nothing at 1 (it found everything when ties counted).
  const Tensor<float> collapsed = Tensor<float>::from_vector({1, 0, 1, 0, 1, 0, 1, 0}, {4, 2});
  const eval::RetrievalResult none = eval::retrieval(images, collapsed);
  CHECK(none.i2t_r1 == 0.0);
  CHECK(none.t2i_r1 == 0.0);
  CHECK(none.i2t_r5 == 1.0);  // among 4, every place is within 5
  CHECK_THROWS_WITH(eval::retrieval(images, texts.slice(0, 0, 3)), Contains("retrieval") && Contains("[3,2]"));
  CHECK_THROWS_WITH(eval::retrieval(images, texts, {1, 2}), Contains("2 group ids for 4 items"));
}

TEST_CASE("eval: shapes_zero_shot and retrieval on a model agree with their parts", "[eval]") {
  const data::Shapes train_split(0, data::Split::train, 16);
  std::vector<std::string> captions;
  for (int64_t i = 0; i < 300; ++i) captions.push_back(train_split.get(i).caption);
  const data::WordTokenizer tok = data::WordTokenizer::build(captions);
  models::SiglipConfig c = tiny_config();
  c.vision.image_size = 16;
  c.text.vocab_size = tok.vocab_size();
  c.text.max_position_embeddings = 16;
  const models::SigLIP<float> model(c, 6);

  const data::Shapes ds(0, data::Split::test, 16, true, 80);
  const eval::ShapesZeroShotResult r = eval::shapes_zero_shot(model, tok, ds, data::Shapes::eval_templates());
  REQUIRE(r.all.count == 80);
  REQUIRE(r.all.predictions.size() == 80);
  CHECK(r.held_out.count + r.seen.count == 80);
  const double hits = r.held_out.pair_top1 * double(r.held_out.count) + r.seen.pair_top1 * double(r.seen.count);
  CHECK(hits / 80 == Approx(r.all.top1));
  std::vector<std::vector<int64_t>> confusion(40, std::vector<int64_t>(40, 0));
  for (int64_t i = 0; i < 80; ++i) ++confusion[size_t(i % 40)][size_t(r.all.predictions[size_t(i)])];
  CHECK(confusion == r.all.confusion);

  // Batched text embeddings equal one batch, and retrieval on the dataset equals retrieval on its embeddings.
  const std::vector<std::string> some(captions.begin(), captions.begin() + 5);
  const Tensor<float> one = model.text_embeddings(tok.batch(some, c.text.max_position_embeddings).to(model.device()));
  const std::vector<float> a = eval::text_embeddings(model, tok, some, 2).to_vector(), b = one.to_vector();
  REQUIRE(a.size() == b.size());
  for (size_t k = 0; k < a.size(); ++k) CHECK(a[k] == Approx(b[k]).margin(1e-6));
  std::vector<std::string> test_captions;
  for (int64_t i = 0; i < 40; ++i) test_captions.push_back(ds.get(i).caption);
  const eval::RetrievalResult whole = eval::retrieval(model, tok, ds, 40);
  const eval::RetrievalResult parts =
      eval::retrieval(eval::image_embeddings(model, ds, 0, 40), eval::text_embeddings(model, tok, test_captions));
  CHECK(whole.i2t_r5 == parts.i2t_r5);
  CHECK(whole.t2i_r5 == parts.t2i_r5);
}
