// The distributed losses and the MPI communicator, run as `mpirun -np D test_mpi` (tests/CMakeLists.txt runs D = 2
// and 3). Every rank runs every test case in the same order, as the collectives in them require; a failed check
// fails that rank and mpirun's exit status. Checks use CHECK, never REQUIRE: a rank that left a test case early would
// leave the others waiting in a collective (the ctest timeout would end it).
//
// The reference is the single-process naive loss of sigmoid.hpp on the global batch, which every rank computes in
// full: rank r holds its rows r * b ... r * b + b - 1.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <cmath>
#include <memory>
#include <siglite/dist/loss.hpp>
#include <siglite/dist/mpi.hpp>
#include <siglite/siglite.hpp>
#include <vector>

#include "tests/toy_data.hpp"

using namespace siglite;
using Catch::Matchers::Contains;

namespace {

dist::MpiCommunicator* world = nullptr;

/// The largest |a - b| / (|b| + 1e-30) over the elements, a and b on the CPU.
template <typename T>
double max_relative_error(const Tensor<T>& a, const Tensor<T>& b) {
  const std::vector<T> x = a.to_vector(), y = b.to_vector();
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i)
    worst = std::max(worst, std::abs(static_cast<double>(x[i]) - static_cast<double>(y[i])) /
                                (std::abs(static_cast<double>(y[i])) + 1e-30));
  return worst;
}

/// The naive loss of the global batch and its gradients; then one distributed loss's share on this rank, whose
/// value and t', b gradients are summed over the ranks, and its embedding gradients compared with this rank's rows.
template <typename T, typename Loss>
void check_against_naive(int64_t b, int64_t d, double rtol, Loss&& distributed_loss) {
  dist::Communicator& comm = *world;
  const int64_t B = b * comm.size(), r0 = comm.rank() * b;
  Generator gen(2024);
  const Tensor<T> x = Tensor<T>::randn({B, d}, gen, T(0), T(0.3)), y = Tensor<T>::randn({B, d}, gen, T(0), T(0.3));
  const auto leaf = [](const Tensor<T>& t) { return t.detach().clone().set_requires_grad(); };

  Tensor<T> gx = leaf(x), gy = leaf(y), gt = leaf(Tensor<T>::full({1}, T(std::log(10.0)))),
            gb = leaf(Tensor<T>::full({1}, T(-2)));
  (loss::sigmoid_loss(gx, gy, gt, gb, loss::SigmoidImpl::Naive) * T(3)).backward();
  const T naive = loss::sigmoid_loss(gx, gy, gt, gb, loss::SigmoidImpl::Naive).item();

  Tensor<T> lx = leaf(slice(x, 0, r0, r0 + b, 1)), ly = leaf(slice(y, 0, r0, r0 + b, 1));
  Tensor<T> lt = leaf(Tensor<T>::full({1}, T(std::log(10.0)))), lb = leaf(Tensor<T>::full({1}, T(-2)));
  const Tensor<T> share = distributed_loss(lx, ly, lt, lb);
  (share * T(3)).backward();  // an upstream gradient other than 1 must reach every rank's blocks
  const Tensor<T> total = dist::global_loss(comm, share);
  const Tensor<T> dt = lt.grad().clone(), db = lb.grad().clone();
  dist::all_reduce_sum(comm, dt);
  dist::all_reduce_sum(comm, db);

  INFO(comm.where() << ", b = " << b << ", d = " << d);
  CHECK(std::abs(static_cast<double>(total.item()) - naive) <= rtol * std::abs(naive));
  CHECK(max_relative_error(lx.grad(), slice(gx.grad(), 0, r0, r0 + b, 1).contiguous()) <= rtol * 10);
  CHECK(max_relative_error(ly.grad(), slice(gy.grad(), 0, r0, r0 + b, 1).contiguous()) <= rtol * 10);
  CHECK(max_relative_error(dt, gt.grad()) <= rtol);
  CHECK(max_relative_error(db, gb.grad()) <= rtol);
}

template <typename T>
Tensor<T> chunked(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& t, const Tensor<T>& b, int64_t tile) {
  return dist::chunked_sigmoid_loss(*world, x, y, t, b, tile);
}

template <typename T>
Tensor<T> gathered(const Tensor<T>& x, const Tensor<T>& y, const Tensor<T>& t, const Tensor<T>& b, int64_t tile) {
  return dist::gathered_sigmoid_loss(*world, x, y, t, b, tile);
}

}  // namespace

TEST_CASE("the chunked loss over the ranks is the naive loss of the global batch", "[mpi]") {
  for (int64_t tile : {256, 3}) {
    INFO("tile " << tile);
    const auto f64 = [tile](auto&&... a) { return chunked<double>(a..., tile); };
    check_against_naive<double>(5, 4, 1e-6, f64);
    check_against_naive<double>(16, 8, 1e-6, f64);
    check_against_naive<float>(16, 8, 1e-4, [tile](auto&&... a) { return chunked<float>(a..., tile); });
  }
}

TEST_CASE("the gathered loss over the ranks is the naive loss of the global batch", "[mpi]") {
  for (int64_t tile : {256, 3}) {
    check_against_naive<double>(5, 4, 1e-6, [tile](auto&&... a) { return gathered<double>(a..., tile); });
    check_against_naive<float>(16, 8, 1e-4, [tile](auto&&... a) { return gathered<float>(a..., tile); });
  }
}

TEST_CASE("chunked and gathered agree to rounding on every rank", "[mpi]") {
  Generator gen(7 + static_cast<uint64_t>(world->rank()));  // each rank its own shard
  const Tensor<double> x = Tensor<double>::randn({6, 3}, gen), y = Tensor<double>::randn({6, 3}, gen);
  const Tensor<double> t = Tensor<double>::full({1}, 1.5), b = Tensor<double>::full({1}, -1.0);
  const auto grads = [&](bool use_chunked) {
    Tensor<double> gx = x.clone().set_requires_grad(), gy = y.clone().set_requires_grad();
    Tensor<double> gt = t.clone().set_requires_grad(), gb = b.clone().set_requires_grad();
    const Tensor<double> l = use_chunked ? chunked(gx, gy, gt, gb, 256) : gathered(gx, gy, gt, gb, 256);
    l.backward();
    return std::vector<Tensor<double>>{l.detach(), gx.grad(), gy.grad(), gt.grad(), gb.grad()};
  };
  const auto c = grads(true), g = grads(false);
  for (size_t k = 0; k < c.size(); ++k) {
    INFO("output " << k << " on " << world->where());
    CHECK(max_relative_error(c[k], g[k]) <= 1e-12);
  }
}

TEST_CASE("a rank whose batch differs is named on every rank, and no rank hangs", "[mpi]") {
  const int64_t b = world->rank() == world->size() - 1 ? 5 : 4;
  const Tensor<float> x = Tensor<float>::zeros({b, 3}), p = Tensor<float>::zeros({1});
  const std::string last = "rank " + std::to_string(world->size() - 1) + " holds embeddings [5,3]";
  CHECK_THROWS_WITH(dist::chunked_sigmoid_loss(*world, x, x, p, p), Contains("chunked_sigmoid_loss") && Contains(last));
  CHECK_THROWS_WITH(dist::gathered_sigmoid_loss(*world, x, x, p, p), Contains("gathered_sigmoid_loss") && Contains(last));
}

TEST_CASE("a rank whose own checks refuse its inputs throws its error, the others name it, and no rank hangs",
          "[mpi]") {
  const int bad = world->size() - 1;
  const Tensor<float> x = Tensor<float>::zeros({4, 3}), p = Tensor<float>::zeros({1});
  const Tensor<float> t = world->rank() == bad ? Tensor<float>::zeros({2}) : p;  // t' must hold one value
  const std::string named = "rank " + std::to_string(bad) + " refused its inputs";
  for (const bool ring : {true, false}) {
    try {
      ring ? dist::chunked_sigmoid_loss(*world, x, x, t, p) : dist::gathered_sigmoid_loss(*world, x, x, t, p);
      FAIL_CHECK("no error");
    } catch (const Error& e) {
      CHECK_THAT(std::string(e.what()), world->rank() == bad ? Contains("t_prime") : Contains(named));
    }
  }
}

TEST_CASE("all_reduce_sum leaves the same bits on every rank", "[mpi]") {
  // Values whose sum depends on the order of the additions: the ranks must still agree.
  const std::vector<float> mine{1e8f * static_cast<float>(world->rank() % 2 ? -1 : 1), 1.0f + 1e-7f * world->rank()};
  const Tensor<float> x = Tensor<float>::from_vector(mine);
  dist::all_reduce_sum(*world, x);
  const Tensor<float> all = Tensor<float>::empty({2 * static_cast<int64_t>(world->size())});
  world->all_gather(dist::buffer_of(x), dist::buffer_of(all));
  const std::vector<float> v = all.to_vector();
  for (int k = 1; k < world->size(); ++k) {
    CHECK(v[2 * static_cast<size_t>(k)] == v[0]);
    CHECK(v[2 * static_cast<size_t>(k) + 1] == v[1]);
  }
}

TEST_CASE("data-parallel training over the ranks steps as one process on the global batch", "[mpi]") {
  const testing::Quadrants ds;
  const data::WordTokenizer tok = testing::tokenizer(ds);
  train::TrainOptions opt;
  opt.batch_size = 12;  // 6 or 4 pairs a rank
  opt.steps = 4;
  opt.lr = 1e-2;
  opt.warmup_fraction = 0.25;
  opt.seed = 5;
  const auto train = [&](train::LossKind loss, bool distributed) {
    models::SigLIP<float> model(testing::tiny_config(), 3);
    train::TrainOptions o = opt;
    o.loss = loss;
    train::Trainer trainer(model, ds, tok, o);
    if (distributed) trainer.distribute(*world, 1);  // and the ranks' weights checked identical after every step
    const train::TrainResult r = trainer.run();
    return std::make_pair(r, model.named_parameters());
  };
  const auto [alone, alone_params] = train(train::LossKind::Tiled, false);
  for (train::LossKind loss : {train::LossKind::Chunked, train::LossKind::Gathered}) {
    INFO(to_string(loss) << " loss on " << world->where());
    const auto [ranks, params] = train(loss, true);
    CHECK(ranks.steps == alone.steps);
    for (size_t k = 0; k < alone.history.size() && k < ranks.history.size(); ++k) {
      INFO("step " << k + 1);
      CHECK(std::abs(ranks.history[k].loss - alone.history[k].loss) <= 1e-5 * std::abs(alone.history[k].loss));
      CHECK(std::abs(ranks.history[k].grad_norm - alone.history[k].grad_norm) <= 1e-4 * alone.history[k].grad_norm);
    }
    // A key bias has no gradient in exact arithmetic (softmax ignores a shift of a row's scores), so what backward
    // computes for it is rounding noise, which AdamW turns into steps of size lr that differ with the order of the
    // additions. Those weights are left out; every other must agree.
    const auto is_key_bias = [](const std::string& name, size_t i, size_t n) {
      return name.find("k_proj.bias") != std::string::npos ||
             (name.find("in_proj_bias") != std::string::npos && i >= n / 3 && i < 2 * n / 3);
    };
    double worst = 0;
    for (size_t k = 0; k < params.size(); ++k) {
      const std::vector<float> a = params[k].second.to_vector(), b = alone_params[k].second.to_vector();
      for (size_t i = 0; i < a.size(); ++i)
        if (!is_key_bias(params[k].first, i, a.size()))
          worst = std::max(worst, std::abs(double(a[i]) - double(b[i])));
    }
    INFO("largest difference of a weight after " << opt.steps << " steps: " << worst);
    CHECK(worst <= 1e-5);
  }
}

TEST_CASE("data-parallel training refuses a loss that sees one shard, and a batch that does not split", "[mpi]") {
  const testing::Quadrants ds;
  const data::WordTokenizer tok = testing::tokenizer(ds);
  models::SigLIP<float> model(testing::tiny_config(), 3);
  train::TrainOptions opt;
  opt.steps = 1;
  opt.batch_size = 12;
  train::Trainer tiled(model, ds, tok, opt);
  CHECK_THROWS_WITH(tiled.distribute(*world), Contains("the tiled loss sees only one rank's shard"));
  opt.loss = train::LossKind::Chunked;
  opt.batch_size = 12 * world->size() + 1;
  train::Trainer odd(model, ds, tok, opt);
  CHECK_THROWS_WITH(odd.distribute(*world), Contains("does not split into equal shards"));
}

TEST_CASE("ranks that start from different weights are named before the first step", "[mpi]") {
  const testing::Quadrants ds;
  const data::WordTokenizer tok = testing::tokenizer(ds);
  models::SigLIP<float> model(testing::tiny_config(), 3 + static_cast<uint64_t>(world->rank() == 1));
  train::TrainOptions opt;
  opt.steps = 1;
  opt.batch_size = 12;
  opt.loss = train::LossKind::Chunked;
  train::Trainer trainer(model, ds, tok, opt);
  CHECK_THROWS_WITH(trainer.distribute(*world), Contains("differs between rank 0 and rank 1 at start"));
}

int main(int argc, char** argv) {
  dist::MpiCommunicator comm;
  world = &comm;
  Catch::Session session;
  if (const int rc = session.applyCommandLine(argc, argv); rc != 0) return rc;
  const int failed = session.run();
  // Every rank exits with 1 when a check failed on any rank, so mpirun's status does not depend on which rank it
  // reports.
  int any_failed = failed > 0 ? 1 : 0, status = 0;
  MPI_Allreduce(&any_failed, &status, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return status;
}
