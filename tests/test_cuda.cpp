// The CUDA backend (backends/cuda/) in a build with SIGLITE_WITH_CUDA: registered whether or not a GPU is present,
// a missing GPU a one-line error; where a GPU is present, a bad index found by a kernel is raised at the next read,
// and training steps give the CPU's losses. Every kernel runs there in the op table (test_ops.cpp) against the CPU.
// Without a GPU the GPU cases skip, each with one line.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <vector>

#include <siglite/siglite.hpp>

#include "toy_data.hpp"

#ifdef SIGLITE_TEST_CUDA

using namespace siglite;
using Catch::Contains;

namespace {

/// Whether a GPU is present; says once per test case that it skips when none is.
bool have_gpu() {
  if (backends::device_count(DeviceType::CUDA) > 0) return true;
  WARN("skipped: no CUDA GPU (cudaGetDeviceCount found none)");
  return false;
}

/// Whether every value of b is within `rel` of a's relative to the larger of |a| and 1.
bool close(const std::vector<double>& a, const std::vector<double>& b, double rel) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!(std::abs(a[i] - b[i]) <= rel * std::max(1.0, std::abs(a[i])))) return false;
  return true;
}

}  // namespace

TEST_CASE("cuda: the backend is registered in a CUDA build, and a device it lacks is a one-line error", "[cuda]") {
  REQUIRE(backends::available(DeviceType::CUDA));
  CHECK(Device::parse("cuda:0") == Device::cuda(0));
  const int n = backends::device_count(DeviceType::CUDA);
  CHECK_THROWS_WITH(Tensor<float>::zeros({2}, Device::cuda(n)),
                    Contains("cuda:" + std::to_string(n) + " is not available") &&
                        Contains("cuda has " + std::to_string(n) + " device(s)"));
}

TEST_CASE("cuda: copies round-trip, the allocator reuses blocks, and a bad index is raised at the next read",
          "[cuda]") {
  if (!have_gpu()) return;
  const Device gpu = Device::cuda();
  const Tensor<float> t = Tensor<float>::from_vector({1, 2, 3, 4, 5, 6}, {2, 3}, gpu);
  CHECK(t.t().to_vector() == std::vector<float>{1, 4, 2, 5, 3, 6});
  CHECK(sum(t).item() == 21.0f);
  Allocator& alloc = backends::of(gpu).allocator(0);
  { const Tensor<float> a = Tensor<float>::zeros({1000}, gpu); }
  const int64_t before = alloc.stats().system_allocations;
  { const Tensor<float> b = Tensor<float>::zeros({1000}, gpu); }
  CHECK(alloc.stats().system_allocations == before);
  const Tensor<float> table = Tensor<float>::zeros({5, 2}, gpu);
  const Tensor<int64_t> ids = Tensor<int64_t>::from_vector({1, 7}, {2}, gpu);
  CHECK_THROWS_WITH(embedding(table, ids).to_vector(), Contains("index 7") && Contains("position 1"));
  CHECK(sum(t).item() == 21.0f);  // the device goes on after the fault is raised
}

TEST_CASE("cuda: 20 Trainer steps of a toy SigLIP give the CPU's losses and weights within 1e-4", "[cuda][train]") {
  if (!have_gpu()) return;
  const testing::Quadrants ds;
  const data::WordTokenizer tok = testing::tokenizer(ds);
  train::TrainOptions o;
  o.batch_size = 16;
  o.steps = 20;
  o.lr = 3e-3;
  o.seed = 5;
  const auto run = [&](Device d) {
    models::SigLIP<float> model(testing::tiny_config(), 3);
    model.to(d);
    train::Trainer trainer(model, ds, tok, o);
    const train::TrainResult r = trainer.run();
    std::vector<double> out{r.t, r.b};
    for (const train::StepInfo& s : r.history) out.insert(out.end(), {s.loss, s.t, s.b});
    for (const auto& [name, p] : model.named_parameters())
      for (float v : p.to_vector()) out.push_back(v);
    return out;
  };
  CHECK(close(run(Device::cpu()), run(Device::cuda()), 1e-4));
}

TEST_CASE("cuda: 10 steps of fmnist-tiny on Fashion-MNIST give the CPU's losses within 1e-4 relative",
          "[cuda][train]") {
  if (!have_gpu()) return;
  if (!std::filesystem::is_directory(data::FashionMnist::default_dir)) {
    WARN("skipped: " << data::FashionMnist::default_dir << " is missing (install Debian's dataset-fashion-mnist)");
    return;
  }
  const data::FashionMnist train_set(data::FashionMnist::default_dir, data::Split::train, 0);
  std::vector<std::string> corpus;
  for (int64_t i = 0; i < 2000; ++i) corpus.push_back(train_set.get(i).caption);
  const data::WordTokenizer tok = data::WordTokenizer::build(corpus);
  train::TrainOptions o;
  o.batch_size = 64;
  o.steps = 10;
  const auto run = [&](Device d) {
    models::SigLIP<float> model(models::SiglipConfig::preset("fmnist-tiny"), 0);
    model.to(d);
    train::Trainer trainer(model, train_set, tok, o);
    std::vector<double> losses;
    for (const train::StepInfo& s : trainer.run().history) losses.push_back(s.loss);
    return losses;
  };
  CHECK(close(run(Device::cpu()), run(Device::cuda()), 1e-4));
}

#endif  // SIGLITE_TEST_CUDA
