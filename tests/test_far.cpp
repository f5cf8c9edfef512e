// The far device (far_device.hpp): memory the host cannot touch, kernels that are the CPU's. A host read of its
// memory is shown to kill the process; the model, a training step (which waits for the device twice), the Trainer,
// evaluation and the HF golden model give the CPU's numbers bit for bit there, which shows that no code above
// backends/ reads or writes device memory on the host. Every op runs there in the op table (test_ops.cpp).
#include <catch2/catch.hpp>
#include <sys/wait.h>

#include <csignal>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include <siglite/siglite.hpp>

#include "far_device.hpp"
#include "samples/embed.hpp"
#include "toy_data.hpp"

using namespace siglite;
using siglite::testing::far_device;
using siglite::testing::far_syncs;
using Catch::Contains;

namespace {

/// Whether a forked process survives reading the float at p (it exits 0 after the read; a fault kills it).
bool read_survives(const float* p) {
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    std::signal(SIGSEGV, SIG_DFL);  // die of the fault, without the test framework's report
    std::signal(SIGBUS, SIG_DFL);
    volatile float v = *p;
    (void)v;
    _exit(0);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace

TEST_CASE("far: a host read of the far device's memory kills the process", "[far]") {
  const Tensor<float> t = Tensor<float>::ones({4}, far_device()), host = Tensor<float>::ones({4}, Device::cpu());
  CHECK(read_survives(host.data()));
  CHECK_FALSE(read_survives(t.device_ptr()));
  // The same tensor read through the device's copy gives its values.
  CHECK(t.to_vector() == std::vector<float>{1, 1, 1, 1});
}

TEST_CASE("far: host accessors refuse far tensors, while item, to_vector and to() copy", "[far]") {
  const Device far = far_device();
  CHECK(far.str() == "far:0");
  const Tensor<float> t = Tensor<float>::from_vector({1, 2, 3, 4}, {2, 2}, far);
  CHECK(t.device() == far);
  CHECK_THROWS_WITH(t.data(), Contains("far:0") && Contains("to(Device::cpu())"));
  CHECK_THROWS_WITH(t.at({0, 0}), Contains("far:0"));
  CHECK(t.slice(0, 1, 2).reshape({2}).to_vector() == std::vector<float>{3, 4});
  CHECK(t.t().to_vector() == std::vector<float>{1, 3, 2, 4});
  CHECK(sum(t).item() == 10.0f);
  const Tensor<float> back = t.to(Device::cpu());
  CHECK(back.device() == Device::cpu());
  CHECK(back.data()[3] == 4.0f);
  CHECK_THROWS_WITH(Tensor<float>::ones({2}, Device::cpu()) + t, Contains("add") && Contains("cpu") && Contains("far:0"));
  CHECK_THROWS_WITH(matmul(Tensor<float>::ones({2, 2}, Device::cpu()), t), Contains("matmul: operands on cpu and far:0"));
}

TEST_CASE("far: the gradient of to() flows back to the source device", "[far]") {
  const Tensor<double> x = Tensor<double>::from_vector({1, 2, 3}, Device::cpu()).set_requires_grad();
  const Tensor<double> y = x.to(far_device());
  sum(y * y).backward();
  REQUIRE(x.grad().defined());
  CHECK(x.grad().device() == Device::cpu());
  CHECK(x.grad().to_vector() == std::vector<double>{2, 4, 6});
}

TEST_CASE("far: a model moved with Module::to gives the CPU's outputs, gradients and AdamW step", "[far]") {
  models::SiglipConfig c = models::SiglipConfig::preset("fmnist-tiny");
  c.vision.posemb = models::PositionEmbedding::SinCos2d;  // a buffer the model makes, moved with it
  auto on_cpu = std::make_unique<models::SigLIP<float>>(c, 3), on_far = std::make_unique<models::SigLIP<float>>(c, 3);
  on_cpu->to(Device::cpu());  // made on the default device, which may be the far one
  on_far->to(Device::cpu());
  const Tensor<float> handle = on_far->text_model->head->weight;  // taken before the move
  on_far->to(far_device());
  CHECK(handle.device() == far_device());
  for (const auto& [name, p] : on_far->named_parameters()) {
    INFO(name);
    CHECK(p.device() == far_device());
  }
  for (const auto& [name, p] : on_far->state_dict()) {
    INFO(name);
    CHECK(p.device() == far_device());
  }
  Generator gen(5);
  const int64_t n = 8;
  const Tensor<float> images = Tensor<float>::randn({n, c.vision.num_channels, c.vision.image_size,
                                                     c.vision.image_size}, gen);
  std::vector<int64_t> tokens(static_cast<size_t>(n * c.text.max_position_embeddings));
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int64_t>((i * 7) % 50);
  const Tensor<int64_t> ids = Tensor<int64_t>::from_vector(tokens, {n, c.text.max_position_embeddings});

  const auto step = [&](models::SigLIP<float>& m, int64_t& syncs) {
    const Device d = m.device();
    optim::AdamW opt(m.named_parameters());
    const int64_t before = far_syncs();
    const Tensor<float> loss = loss::sigmoid_loss(m.image_embeddings(images.to(d)), m.text_embeddings(ids.to(d)),
                                                  m.logit_scale, m.logit_bias);
    const float value = loss.item();
    loss.backward();
    const double norm = optim::clip_grad_norm(opt, 1.0);
    opt.step();
    syncs = far_syncs() - before;
    std::vector<float> out{value, static_cast<float>(norm)};
    for (const auto& [name, p] : m.named_parameters()) {
      const std::vector<float> v = p.to_vector();
      out.insert(out.end(), v.begin(), v.end());
    }
    return out;
  };
  int64_t cpu_syncs = 0, far_step_syncs = 0;
  const std::vector<float> a = step(*on_cpu, cpu_syncs), b = step(*on_far, far_step_syncs);
  CHECK(a == b);
  CHECK(far_step_syncs == 2);  // the loss and the gradient norm
  // An optimizer made before the move holds state on the old device: its step refuses to run.
  models::SigLIP<float> late(c, 3);
  late.to(Device::cpu());
  optim::AdamW opt(late.named_parameters());
  late.to(far_device());
  CHECK_THROWS_WITH(opt.step(), Contains("make the optimizer after moving the model"));
}

TEST_CASE("far: 20 Trainer steps give the CPU's losses and weights bit for bit, reading the device twice a step",
          "[far][train]") {
  const testing::Quadrants ds;
  const data::WordTokenizer tok = testing::tokenizer(ds);
  for (const bool siglit : {false, true}) {
    INFO((siglit ? "SigLiT, frozen image embeddings cached on the device" : "both towers"));
    train::TrainOptions o;
    o.batch_size = 16;
    o.steps = 20;
    o.lr = 3e-3;
    o.seed = 5;
    o.lock_image = siglit;
    const auto run = [&](Device d, std::vector<int64_t>& syncs) {
      models::SigLIP<float> model(testing::tiny_config(), 3);
      model.to(d);
      train::Trainer trainer(model, ds, tok, o);
      int64_t last = far_syncs();
      trainer.add_callback([&](const train::StepInfo&) {
        syncs.push_back(far_syncs() - last);
        last = far_syncs();
      });
      const train::TrainResult r = trainer.run();
      std::vector<double> out{r.t, r.b};
      for (const train::StepInfo& s : r.history) out.insert(out.end(), {s.loss, s.t, s.b, s.grad_norm});
      for (const auto& [name, p] : model.named_parameters())
        for (float v : p.to_vector()) out.push_back(v);
      return out;
    };
    std::vector<int64_t> cpu_syncs, far_step_syncs;
    const std::vector<double> a = run(Device::cpu(), cpu_syncs), b = run(far_device(), far_step_syncs);
    CHECK(a == b);
    REQUIRE(far_step_syncs.size() == 20);
    for (int64_t s : far_step_syncs) CHECK(s == 2);
  }
}

TEST_CASE("far: 20 steps of fmnist-tiny on Fashion-MNIST, then zero-shot, give the CPU's numbers bit for bit",
          "[far][train]") {
  if (!std::filesystem::is_directory(data::FashionMnist::default_dir)) {
    WARN("skipped: " << data::FashionMnist::default_dir << " is missing (install Debian's dataset-fashion-mnist)");
    return;
  }
  const data::FashionMnist train_set(data::FashionMnist::default_dir, data::Split::train, 0);
  const data::FashionMnist test_set(data::FashionMnist::default_dir, data::Split::test, 0);
  std::vector<std::string> corpus;
  for (int64_t i = 0; i < 2000; ++i) corpus.push_back(train_set.get(i).caption);
  const data::WordTokenizer tok = data::WordTokenizer::build(corpus);
  train::TrainOptions o;
  o.batch_size = 64;
  o.steps = 20;
  const auto run = [&](Device d) {
    models::SigLIP<float> model(models::SiglipConfig::preset("fmnist-tiny"), 0);
    model.to(d);
    train::Trainer trainer(model, train_set, tok, o);
    const train::TrainResult r = trainer.run();
    std::vector<double> out{r.t, r.b};
    for (const train::StepInfo& s : r.history) out.insert(out.end(), {s.loss, s.grad_norm});
    const eval::ZeroShotResult z = eval::zero_shot(model, tok, test_set, data::FashionMnist::eval_templates(), 300);
    out.push_back(z.top1);
    out.insert(out.end(), z.predictions.begin(), z.predictions.end());
    return out;
  };
  CHECK(run(Device::cpu()) == run(far_device()));
}

TEST_CASE("far: zero-shot, retrieval and embeddings on the far device are the CPU's", "[far][eval]") {
  const testing::Quadrants ds;
  const data::WordTokenizer tok = testing::tokenizer(ds);
  models::SigLIP<float> on_cpu(testing::tiny_config(), 4), on_far(testing::tiny_config(), 4);
  on_cpu.to(Device::cpu());
  on_far.to(far_device());
  const eval::ZeroShotResult zc = eval::zero_shot(on_cpu, tok, ds, {"a {} tile"});
  const eval::ZeroShotResult zf = eval::zero_shot(on_far, tok, ds, {"a {} tile"});
  CHECK(zc.predictions == zf.predictions);
  CHECK(zc.top1 == zf.top1);
  const eval::RetrievalResult rc = eval::retrieval(on_cpu, tok, ds, 32), rf = eval::retrieval(on_far, tok, ds, 32);
  CHECK(rc.i2t_r1 == rf.i2t_r1);
  CHECK(rc.t2i_r5 == rf.t2i_r5);
  const Tensor<float> ec = eval::image_embeddings(on_cpu, ds, 0, 10), ef = eval::image_embeddings(on_far, ds, 0, 10);
  CHECK(ef.device() == far_device());
  CHECK(ec.to_vector() == ef.to_vector());
  // siglite-embed's computation: host inputs in, host embeddings out.
  embed::Inputs in;
  in.pixels = data::make_batch(ds, {0, 1, 2}).images;
  in.ids = tok.batch({"a north tile", "a west tile"}, testing::tiny_config().text.max_position_embeddings);
  const io::TensorMap mc = embed::embeddings(on_cpu, in), mf = embed::embeddings(on_far, in);
  for (const char* key : {"image_embeds", "text_embeds"}) {
    INFO(key);
    CHECK(mf.at(key).device() == Device::cpu());
    CHECK(mc.at(key).to_vector() == mf.at(key).to_vector());
  }
}

TEST_CASE("far: the HF golden model gives the CPU's outputs and gradients bit for bit", "[far][model]") {
  const std::filesystem::path tiny = std::filesystem::path(SIGLITE_TEST_DATA) / "siglip_tiny";
  const io::TensorMap golden = io::load_safetensors(tiny / "golden.safetensors");
  const Tensor<float> images = golden.at("input.pixel_values");
  std::vector<int64_t> tokens;
  for (float v : golden.at("input.input_ids").to_vector()) tokens.push_back(static_cast<int64_t>(v));
  const Tensor<int64_t> ids = Tensor<int64_t>::from_vector(tokens, golden.at("input.input_ids").shape());
  const auto run = [&](Device d) {
    auto model = io::load_pretrained(tiny);
    model->to(d);
    const models::SiglipOutput<float> out = model->forward(images.to(d), ids.to(d));
    const Tensor<float> loss = loss::sigmoid_loss(out.image_embeds, out.text_embeds, model->logit_scale,
                                                  model->logit_bias, loss::SigmoidImpl::Naive);
    loss.backward();
    std::vector<float> all = out.logits_per_text.to_vector();
    all.push_back(loss.item());
    for (const auto& [name, p] : model->named_parameters())
      for (float v : p.grad().to_vector()) all.push_back(v);
    return all;
  };
  CHECK(run(Device::cpu()) == run(far_device()));
}
