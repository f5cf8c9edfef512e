// The far device (far_device.hpp): memory the host cannot touch, kernels that are the CPU's. Every op runs on it
// and gives the CPU's values and gradients bit for bit, which shows that no code above backends/ reads or writes
// device memory on the host; a host read of its memory is shown to kill the process; a training step of the
// model is shown to wait for the device twice. The Trainer, evaluation and the HF golden model run there too.
#include <catch2/catch.hpp>
#include <sys/wait.h>

#include <csignal>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include <siglite/siglite.hpp>

#include "far_device.hpp"
#include "samples/embed.hpp"
#include "toy_data.hpp"

using namespace siglite;
using siglite::testing::far_device;
using siglite::testing::far_syncs;
using Catch::Contains;

/// SIGLITE_TEST_DEVICE=far makes the far device the default device of the run (ctest runs the suite so as well as
/// on the CPU): every tensor and layer a test makes without naming a device then lives where the host cannot read
/// it. Called by main.cpp's listener before the first test.
void set_test_device_from_environment() {
  const char* name = std::getenv("SIGLITE_TEST_DEVICE");
  const std::string device = name ? name : "";
  if (device.empty() || device == "cpu") return;
  if (device != "far") {
    std::fprintf(stderr, "SIGLITE_TEST_DEVICE=%s: the suite runs on cpu or far\n", device.c_str());
    std::exit(2);
  }
  set_default_device(far_device());
}

namespace {

/// One row of the op table: how to make the inputs (host tensors), and the op on them. Every row runs on every
/// device against the CPU, and its double gradients against central differences.
template <typename T>
struct OpCase {
  std::string name;
  std::function<std::vector<Tensor<T>>(Generator&)> inputs;
  std::function<Tensor<T>(const std::vector<Tensor<T>>&)> op;
};

template <typename T>
Tensor<T> randn(Generator& gen, const Shape& shape) {
  return Tensor<T>::randn(shape, gen);
}

template <typename T>
std::vector<OpCase<T>> op_table() {
  using V = std::vector<Tensor<T>>;
  const auto shapes = [](std::vector<Shape> s) {
    return [s](Generator& gen) {
      V out;
      for (const Shape& sh : s) out.push_back(randn<T>(gen, sh));
      return out;
    };
  };
  const auto positive = [](Shape s) {
    return [s](Generator& gen) { return V{exp(randn<T>(gen, s))}; };
  };
  const auto ids = [](std::vector<int64_t> v) { return Tensor<int64_t>::from_vector(v); };
  return {
      {"add (broadcast)", shapes({{3, 4}, {4}}), [](const V& x) { return x[0] + x[1]; }},
      {"sub", shapes({{2, 3, 4}, {3, 1}}), [](const V& x) { return x[0] - x[1]; }},
      {"mul", shapes({{3, 4}, {3, 4}}), [](const V& x) { return x[0] * x[1]; }},
      {"div", [](Generator& g) { return V{randn<T>(g, {3, 4}), exp(randn<T>(g, {4}))}; },
       [](const V& x) { return x[0] / x[1]; }},
      {"maximum", shapes({{3, 4}, {3, 4}}), [](const V& x) { return maximum(x[0], x[1]); }},
      {"scalar ops", shapes({{5}}), [](const V& x) { return -(x[0] * T(2) + T(1)); }},
      {"exp", shapes({{7}}), [](const V& x) { return exp(x[0]); }},
      {"log", positive({7}), [](const V& x) { return log(x[0]); }},
      {"sqrt", positive({7}), [](const V& x) { return sqrt(x[0]); }},
      {"rsqrt", positive({7}), [](const V& x) { return rsqrt(x[0]); }},
      {"pow", positive({7}), [](const V& x) { return pow(x[0], 1.5); }},
      {"abs", shapes({{7}}), [](const V& x) { return abs(x[0]); }},
      {"tanh", shapes({{7}}), [](const V& x) { return tanh(x[0]); }},
      {"sigmoid", shapes({{7}}), [](const V& x) { return sigmoid(x[0]); }},
      {"log_sigmoid", shapes({{7}}), [](const V& x) { return log_sigmoid(x[0]); }},
      {"softplus", shapes({{7}}), [](const V& x) { return softplus(x[0]); }},
      {"relu", shapes({{7}}), [](const V& x) { return relu(x[0]); }},
      {"gelu tanh", shapes({{7}}), [](const V& x) { return gelu(x[0]); }},
      {"gelu erf", shapes({{7}}), [](const V& x) { return gelu(x[0], GeluApprox::None); }},
      {"sin, cos", shapes({{7}}), [](const V& x) { return sin(x[0]) * T(2) + cos(x[0]); }},
      {"sum, mean over axes", shapes({{3, 4, 5}}),
       [](const V& x) { return sum(x[0], {1}) + mean(x[0], {1, 2}, true).reshape({3, 1}); }},
      {"max over an axis", shapes({{3, 4}}), [](const V& x) { return max(x[0], {1}, true); }},
      {"matmul 2-D", shapes({{5, 6}, {6, 3}}), [](const V& x) { return matmul(x[0], x[1]); }},
      {"matmul transposed", shapes({{6, 5}, {3, 6}}), [](const V& x) { return matmul(x[0].t(), x[1].t()); }},
      {"matmul batched, broadcast", shapes({{2, 3, 4, 5}, {5, 2}}), [](const V& x) { return matmul(x[0], x[1]); }},
      {"linear", shapes({{2, 3, 6}, {4, 6}, {4}}), [](const V& x) { return linear(x[0], x[1], x[2]); }},
      {"linear_gelu", shapes({{5, 6}, {4, 6}, {4}}), [](const V& x) { return linear_gelu(x[0], x[1], x[2]); }},
      {"softmax", shapes({{3, 5}}), [](const V& x) { return softmax(x[0]); }},
      {"log_softmax over axis 0", shapes({{3, 5}}), [](const V& x) { return log_softmax(x[0], 0); }},
      {"layer_norm", shapes({{4, 6}, {6}, {6}}), [](const V& x) { return layer_norm(x[0], x[1], x[2]); }},
      {"l2_normalize", shapes({{4, 6}}), [](const V& x) { return l2_normalize(x[0]); }},
      {"concat, stack", shapes({{2, 3}, {2, 3}}),
       [](const V& x) { return concat(V{x[0], x[1]}, 1) + stack(V{x[0], x[1]}, 1).reshape({2, 6}); }},
      {"index_select", shapes({{5, 3}}), [ids](const V& x) { return index_select(x[0], 0, ids({4, 0, 4}).to(x[0].device())); }},
      {"embedding", shapes({{6, 3}}),
       [ids](const V& x) { return embedding(x[0], ids({1, 5, 1, 0}).reshape({2, 2}).to(x[0].device())); }},
      {"patchify", shapes({{2, 3, 4, 4}}), [](const V& x) { return patchify(x[0], 2); }},
      {"topk_indices (strided rows), as index_select's index", shapes({{7, 2}}),
       [](const V& x) {
         const Tensor<T> rows = x[0].t();  // [2, 7]
         return index_select(rows, 1, topk_indices(rows, 3).slice(0, 1, 2).reshape({-1}));
       }},
      {"views", shapes({{2, 3, 4}}),
       [](const V& x) {
         return x[0].permute({2, 0, 1}).slice(0, 1, 4, 2).transpose(1, 2).contiguous().reshape({-1}) +
                x[0].slice(2, 0, 1).expand({2, 3, 4}).reshape({-1}).slice(0, 0, 12);
       }},
      {"scaled_dot_product_attention", shapes({{2, 3, 4}, {2, 5, 4}, {2, 5, 3}}),
       [](const V& x) { return scaled_dot_product_attention(x[0], x[1], x[2]); }},
      {"multi_head_attention, masked", shapes({{2, 3, 8}, {2, 5, 8}, {2, 5, 8}}),
       [](const V& x) {
         Tensor<T> mask = Tensor<T>::zeros({1, 1, 1, 5}, Device::cpu());
         mask.data()[4] = -std::numeric_limits<T>::infinity();
         return multi_head_attention(x[0], x[1], x[2], 2, mask.to(x[0].device()));
       }},
      {"softmax, a fully masked row", shapes({{3, 4}}),
       [](const V& x) {
         Tensor<T> mask = Tensor<T>::zeros({3, 1}, Device::cpu());
         mask.data()[1] = -std::numeric_limits<T>::infinity();
         return softmax(x[0] + mask.to(x[0].device()));
       }},
      {"multi_head_attention, a fully masked query", shapes({{2, 3, 8}, {2, 5, 8}, {2, 5, 8}}),
       [](const V& x) {
         Tensor<T> mask = Tensor<T>::zeros({1, 1, 3, 1}, Device::cpu());
         mask.data()[0] = -std::numeric_limits<T>::infinity();
         return multi_head_attention(x[0], x[1], x[2], 2, mask.to(x[0].device()));
       }},
      {"multi_head_attention_packed", shapes({{2, 4, 12}}),
       [](const V& x) { return multi_head_attention_packed(x[0], 2); }},
      {"multi_head_attention_packed_at", shapes({{2, 4, 12}}),
       [](const V& x) { return multi_head_attention_packed_at(x[0], 3, 2); }},
      {"sigmoid_loss naive", shapes({{6, 4}, {6, 4}, {1}, {1}}),
       [](const V& x) { return loss::sigmoid_loss(x[0], x[1], x[2], x[3], loss::SigmoidImpl::Naive); }},
      {"sigmoid_loss tiled", shapes({{7, 4}, {7, 4}, {1}, {1}}),
       [](const V& x) { return loss::sigmoid_loss(x[0], x[1], x[2], x[3], loss::SigmoidImpl::Tiled, 3); }},
      {"softmax_loss", shapes({{6, 4}, {6, 4}, {1}}), [](const V& x) { return loss::softmax_loss(x[0], x[1], x[2]); }},
      {"to the host and back", shapes({{3, 2}}), [](const V& x) { return (x[0].to(Device::cpu()) * T(3)).to(x[0].device()); }},
      {"cast from int64 and the other float type, eq, as factors", shapes({{5}}),
       [ids](const V& x) {
         using Other = std::conditional_t<std::is_same_v<T, float>, double, float>;
         const Device d = x[0].device();
         const Tensor<T> v = x[0].detach(), zero = Tensor<T>::scalar(T(0), d);
         return x[0] * cast<T>(ids({3, -1, 0, 2, 7}).to(d)) + x[0] * eq(maximum(v, zero), v) +
                x[0] * cast<T>(Tensor<Other>::from_vector({0.1, 0.7, -1.3, 2, 5}, d));
       }},
      {"arange, randn, uniform, bernoulli and dropout, drawn on the device", shapes({{2, 6}}),
       [](const V& x) {
         Generator gen(17);
         const Device d = x[0].device();
         return dropout(x[0], 0.3, gen, true) * Tensor<T>::arange(T(-1), T(2), T(0.25), d).reshape({2, 6}) +
                Tensor<T>::randn({2, 6}, gen, T(1), T(2), d) * Tensor<T>::uniform({6}, gen, T(-1), T(1), d) +
                x[0] * Tensor<T>::bernoulli({2, 1}, gen, T(0.5), T(3), d);
       }},
  };
}

/// The op on `device`: its output and the gradient of sum(output * weights) with respect to every input, all
/// copied to the host.
template <typename T>
std::vector<std::vector<T>> run_on(const OpCase<T>& c, Device device, uint64_t seed) {
  Generator gen(seed);
  std::vector<Tensor<T>> xs;
  for (const Tensor<T>& x : c.inputs(gen)) {
    xs.push_back(x.to(device).set_requires_grad());
  }
  const Tensor<T> y = c.op(xs);
  REQUIRE(y.device() == device);
  std::vector<std::vector<T>> out{y.to_vector()};
  const Tensor<T> weights = Tensor<T>::randn(y.shape(), gen).to(device);
  sum(y * weights).backward();
  for (const Tensor<T>& x : xs) {
    REQUIRE(x.grad().defined());
    CHECK(x.grad().device() == device);
    out.push_back(x.grad().to_vector());
  }
  return out;
}

template <typename T>
void check_op_table() {
  for (const OpCase<T>& c : op_table<T>()) {
    INFO(c.name);
    const auto cpu = run_on(c, Device::cpu(), 7), far = run_on(c, far_device(), 7);
    REQUIRE(cpu.size() == far.size());
    for (size_t i = 0; i < cpu.size(); ++i) {
      INFO((i == 0 ? std::string("output") : "gradient of input " + std::to_string(i - 1)));
      CHECK(cpu[i] == far[i]);
    }
  }
}

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

TEST_CASE("far: every op of the table gives the CPU's values and gradients bit for bit (double)", "[far]") {
  check_op_table<double>();
}

TEST_CASE("far: every op of the table gives the CPU's values and gradients bit for bit (float)", "[far]") {
  check_op_table<float>();
}

TEST_CASE("op table: every row's gradients agree with central differences in double", "[far][gradcheck]") {
  for (const OpCase<double>& c : op_table<double>()) {
    INFO(c.name);
    Generator gen(11);
    std::vector<Tensor<double>> xs = c.inputs(gen);
    for (Tensor<double>& x : xs) x.set_requires_grad();
    const GradcheckResult r = gradcheck(c.op, xs);
    INFO(r.message);
    CHECK(r.ok);
  }
}

TEST_CASE("far: an index out of range is an error on the far device too", "[far]") {
  const Tensor<float> w = Tensor<float>::ones({4, 2}, far_device());
  CHECK_THROWS_WITH(embedding(w, Tensor<int64_t>::from_vector({1, 4}, far_device())),
                    Contains("index 4") && Contains("[0, 4)"));
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
