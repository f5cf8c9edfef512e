// The contrastive losses: the naive and tiled sigmoid loss against a plain-loop double reference and
// against each other (loss and all four gradients), finite differences, float, the softmax loss, bad
// input, memory that stays O(n*d), and the worked example of docs/loss.md.
#include <catch2/catch.hpp>
#include <siglite/loss/sigmoid.hpp>
#include <siglite/loss/softmax.hpp>
#include <siglite/dist/loss.hpp>
#include <siglite/siglite.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

using namespace siglite;
using loss::SigmoidImpl;
using TD = Tensor<double>;
using TF = Tensor<float>;
using Catch::Contains;

namespace {

/// The loss and the gradients into all four inputs, computed with plain loops in double.
struct Reference {
  double loss = 0, d_tprime = 0, d_bias = 0;
  std::vector<double> d_img, d_txt;
};

double dot(const std::vector<double>& x, const std::vector<double>& y, int64_t i, int64_t j, int64_t d) {
  double s = 0;
  for (int64_t k = 0; k < d; ++k) s += x[static_cast<size_t>(i * d + k)] * y[static_cast<size_t>(j * d + k)];
  return s;
}

/// Adds t * G_ij * y_j to dx_i and t * G_ij * x_i to dy_j, for the gradient G_ij of the loss w.r.t. logit ij.
void add_pair_gradient(Reference& ref, const std::vector<double>& x, const std::vector<double>& y, int64_t i,
                       int64_t j, int64_t d, double t, double g) {
  for (int64_t k = 0; k < d; ++k) {
    ref.d_img[static_cast<size_t>(i * d + k)] += t * g * y[static_cast<size_t>(j * d + k)];
    ref.d_txt[static_cast<size_t>(j * d + k)] += t * g * x[static_cast<size_t>(i * d + k)];
  }
}

/// Algorithm 1 of the paper, one pair at a time: -log_sigmoid(z * l) = log(1 + exp(-z * l)).
Reference sigmoid_reference(const std::vector<double>& x, const std::vector<double>& y, int64_t n, int64_t d,
                            double t_prime, double b) {
  const double t = std::exp(t_prime);
  Reference ref;
  ref.d_img.assign(x.size(), 0.0);
  ref.d_txt.assign(y.size(), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      const double s = dot(x, y, i, j, d), logit = t * s + b, z = i == j ? 1.0 : -1.0;
      const double m = -z * logit;
      ref.loss += std::max(m, 0.0) + std::log1p(std::exp(-std::abs(m)));
      const double g = (1.0 / (1.0 + std::exp(-logit)) - (i == j ? 1.0 : 0.0)) / static_cast<double>(n);
      add_pair_gradient(ref, x, y, i, j, d, t, g);
      ref.d_bias += g;
      ref.d_tprime += g * t * s;
    }
  ref.loss /= static_cast<double>(n);
  return ref;
}

/// CLIP's loss: mean over rows and over columns of logsumexp - the matching logit, averaged.
Reference softmax_reference(const std::vector<double>& x, const std::vector<double>& y, int64_t n, int64_t d,
                            double t_prime) {
  const double t = std::exp(t_prime);
  const auto N = static_cast<size_t>(n);
  std::vector<double> logit(N * N), row_lse(N), col_lse(N);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) logit[static_cast<size_t>(i * n + j)] = t * dot(x, y, i, j, d);
  const auto lse = [&](int64_t fixed, bool row) {
    double mx = -1e300, s = 0;
    for (int64_t k = 0; k < n; ++k) mx = std::max(mx, logit[static_cast<size_t>(row ? fixed * n + k : k * n + fixed)]);
    for (int64_t k = 0; k < n; ++k) s += std::exp(logit[static_cast<size_t>(row ? fixed * n + k : k * n + fixed)] - mx);
    return mx + std::log(s);
  };
  Reference ref;
  ref.d_img.assign(x.size(), 0.0);
  ref.d_txt.assign(y.size(), 0.0);
  for (int64_t i = 0; i < n; ++i) {
    row_lse[static_cast<size_t>(i)] = lse(i, true);
    col_lse[static_cast<size_t>(i)] = lse(i, false);
    ref.loss += (row_lse[static_cast<size_t>(i)] + col_lse[static_cast<size_t>(i)] -
                 2 * logit[static_cast<size_t>(i * n + i)]) / (2.0 * static_cast<double>(n));
  }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      const double l = logit[static_cast<size_t>(i * n + j)];
      const double p_row = std::exp(l - row_lse[static_cast<size_t>(i)]);
      const double p_col = std::exp(l - col_lse[static_cast<size_t>(j)]);
      const double g = (p_row + p_col - (i == j ? 2.0 : 0.0)) / (2.0 * static_cast<double>(n));
      add_pair_gradient(ref, x, y, i, j, d, t, g);
      ref.d_tprime += g * l;
    }
  return ref;
}

/// n random unit vectors of size d (the loss takes L2-normalised embeddings).
std::vector<double> unit_rows(int64_t n, int64_t d, Generator& gen) {
  std::vector<double> v(static_cast<size_t>(n * d));
  for (int64_t i = 0; i < n; ++i) {
    double norm = 0;
    for (int64_t k = 0; k < d; ++k) {
      const double g = gen.normal();
      v[static_cast<size_t>(i * d + k)] = g;
      norm += g * g;
    }
    for (int64_t k = 0; k < d; ++k) v[static_cast<size_t>(i * d + k)] /= std::sqrt(norm);
  }
  return v;
}

/// Text embeddings that lean towards their images, so the positives are not just chance.
std::vector<double> matching_rows(const std::vector<double>& img, int64_t n, int64_t d, Generator& gen) {
  std::vector<double> v = unit_rows(n, d, gen);
  for (int64_t i = 0; i < n; ++i) {
    double norm = 0;
    for (int64_t k = 0; k < d; ++k) {
      double& e = v[static_cast<size_t>(i * d + k)];
      e = 0.6 * img[static_cast<size_t>(i * d + k)] + 0.4 * e;
      norm += e * e;
    }
    for (int64_t k = 0; k < d; ++k) v[static_cast<size_t>(i * d + k)] /= std::sqrt(norm);
  }
  return v;
}

template <typename T>
Tensor<T> leaf(const std::vector<double>& v, const Shape& shape) {
  return Tensor<T>::from_vector(std::vector<T>(v.begin(), v.end()), shape).set_requires_grad();
}

/// max |got - want| <= rtol * max |want| (a norm-wise relative error), with the worst element reported.
template <typename T>
void check_close(const char* what, const std::vector<T>& got, const std::vector<double>& want, double rtol) {
  REQUIRE(got.size() == want.size());
  double scale = 0, worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    scale = std::max(scale, std::abs(want[i]));
    const double err = std::abs(static_cast<double>(got[i]) - want[i]);
    if (err > worst) {
      worst = err;
      at = i;
    }
  }
  INFO(what << ": largest difference " << worst << " at element " << at << " (got "
            << (got.empty() ? 0.0 : static_cast<double>(got[at])) << ", want " << (want.empty() ? 0.0 : want[at])
            << "), scale " << scale);
  CHECK(worst <= rtol * std::max(scale, 1e-300));
}

template <typename T>
void check_scalar(const char* what, T got, double want, double rtol) {
  check_close(what, std::vector<T>{got}, std::vector<double>{want}, rtol);
}

/// Runs one implementation forward and backward and compares everything with the reference.
template <typename T>
void check_against_reference(const std::vector<double>& x, const std::vector<double>& y, int64_t n, int64_t d,
                             double t_prime, double b, SigmoidImpl impl, int64_t tile, double rtol) {
  const Tensor<T> img = leaf<T>(x, {n, d}), txt = leaf<T>(y, {n, d});
  const Tensor<T> tp = leaf<T>({t_prime}, {1}), bias = leaf<T>({b}, {1});
  const Tensor<T> l = loss::sigmoid_loss(img, txt, tp, bias, impl, tile);
  CHECK(l.shape() == Shape{});
  l.backward();
  const Reference ref = sigmoid_reference(x, y, n, d, t_prime, b);
  check_scalar("loss", l.item(), ref.loss, rtol);
  check_close("d img_emb", img.grad().to_vector(), ref.d_img, rtol);
  check_close("d txt_emb", txt.grad().to_vector(), ref.d_txt, rtol);
  check_scalar("d t_prime", tp.grad().item(), ref.d_tprime, rtol);
  check_scalar("d bias", bias.grad().item(), ref.d_bias, rtol);
}

/// The gradients of l into the leaves xs, which are cleared for the next call.
std::vector<TD> grad(const TD& l, const std::vector<TD>& xs) {
  l.backward();
  std::vector<TD> out;
  for (const TD& x : xs) {
    out.push_back(x.grad());
    x.zero_grad();
  }
  return out;
}

void expect_grads(const std::function<TD(const std::vector<TD>&)>& f, const std::vector<TD>& in) {
  const GradcheckResult r = gradcheck(f, in);
  INFO(r.message << " (max abs error " << r.max_abs_error << ")");
  CHECK(r.ok);
}

}  // namespace

TEST_CASE("loss: sigmoid naive and tiled match the plain-loop reference in double", "[loss]") {
  const int64_t d = 24;
  Generator gen(7);
  // (t', b): SigLIP's initialisation, and a trained-looking state where negatives carry real gradient.
  const std::vector<std::pair<double, double>> params = {{std::log(10.0), -10.0}, {2.3, -1.5}};
  for (int64_t n : {1, 2, 7, 256, 1000}) {
    const std::vector<double> x = unit_rows(n, d, gen), y = matching_rows(x, n, d, gen);
    for (const auto& [tp, b] : params) {
      INFO("n = " << n << ", t' = " << tp << ", b = " << b);
      {
        INFO("naive");
        check_against_reference<double>(x, y, n, d, tp, b, SigmoidImpl::Naive, 256, 1e-5);
      }
      // A tile of 60 divides none of the sizes, so every run has partial edge tiles (or one partial tile).
      for (int64_t tile : {60, 256}) {
        INFO("tiled, tile " << tile);
        check_against_reference<double>(x, y, n, d, tp, b, SigmoidImpl::Tiled, tile, 1e-5);
      }
    }
  }
}

TEST_CASE("loss: sigmoid tiled agrees with naive for every tile size, down to 1", "[loss]") {
  const int64_t n = 7, d = 5;
  Generator gen(3);
  const std::vector<double> x = unit_rows(n, d, gen), y = matching_rows(x, n, d, gen);
  const auto run = [&](SigmoidImpl impl, int64_t tile) {
    const TD img = leaf<double>(x, {n, d}), txt = leaf<double>(y, {n, d});
    const TD tp = leaf<double>({0.7}, {1}), bias = leaf<double>({-0.4}, {1});
    const TD l = loss::sigmoid_loss(img, txt, tp, bias, impl, tile);
    l.backward();
    Reference r;
    r.loss = l.item();
    r.d_img = img.grad().to_vector();
    r.d_txt = txt.grad().to_vector();
    r.d_tprime = tp.grad().item();
    r.d_bias = bias.grad().item();
    return r;
  };
  const Reference naive = run(SigmoidImpl::Naive, 1);
  for (int64_t tile : {1, 2, 3, 4, 6, 7, 8, 100}) {
    INFO("tile " << tile);
    const Reference tiled = run(SigmoidImpl::Tiled, tile);
    check_scalar("loss", tiled.loss, naive.loss, 1e-12);
    check_close("d img_emb", tiled.d_img, naive.d_img, 1e-12);
    check_close("d txt_emb", tiled.d_txt, naive.d_txt, 1e-12);
    check_scalar("d t_prime", tiled.d_tprime, naive.d_tprime, 1e-12);
    check_scalar("d bias", tiled.d_bias, naive.d_bias, 1e-12);
  }
}

TEST_CASE("loss: the blocks of the chunked and gathered forms add up to the loss of the batch", "[loss]") {
  // The single-process form of dist/loss.hpp: a batch of n pairs split into D shards of b, rank r's images against
  // the texts of rank (r - s) mod D in step s (positives only in step 0), or against all texts at offset r * b.
  const int64_t n = 12, d = 5;
  Generator gen(4);
  const std::vector<double> x = unit_rows(n, d, gen), y = matching_rows(x, n, d, gen);
  const TD img = leaf<double>(x, {n, d}), txt = leaf<double>(y, {n, d});
  const TD tp = leaf<double>({0.9}, {1}), bias = leaf<double>({-1.5}, {1});
  const TD naive = loss::sigmoid_loss(img, txt, tp, bias, SigmoidImpl::Naive);
  const std::vector<TD> want = grad(naive, {img, txt, tp, bias});
  for (int64_t D : {1, 2, 3, 4}) {
    for (bool ring : {true, false}) {
      for (int64_t tile : {1, 2, 5, 256}) {
        INFO("D = " << D << (ring ? ", ring" : ", gathered") << ", tile " << tile);
        const int64_t b = n / D;
        TD total = TD::zeros({});
        for (int64_t r = 0; r < D; ++r) {
          const TD mine = slice(img, 0, r * b, r * b + b, 1);
          loss::SigmoidBlock block;
          block.divisor = static_cast<double>(n);
          block.tile = tile;
          if (!ring) {
            block.positive_offset = r * b;
            total = total + loss::sigmoid_loss_block(mine, txt, tp, bias, block);
            continue;
          }
          for (int64_t s = 0; s < D; ++s) {
            const int64_t owner = (r - s + D) % D;
            block.positives = s == 0;
            total = total + loss::sigmoid_loss_block(mine, slice(txt, 0, owner * b, owner * b + b, 1), tp, bias, block);
          }
        }
        check_scalar("loss", total.item(), naive.item(), 1e-12);
        const std::vector<TD> got = grad(total, {img, txt, tp, bias});
        for (size_t k = 0; k < got.size(); ++k) check_close("gradient", got[k].to_vector(), want[k].to_vector(), 1e-12);
      }
    }
  }
}

TEST_CASE("loss: the chunked and gathered losses of a job of one rank are the tiled loss", "[loss]") {
  const int64_t n = 9, d = 4;
  Generator gen(8);
  const std::vector<double> x = unit_rows(n, d, gen), y = matching_rows(x, n, d, gen);
  dist::SelfCommunicator self;
  const auto run = [&](int which) {
    const TD img = leaf<double>(x, {n, d}), txt = leaf<double>(y, {n, d});
    const TD tp = leaf<double>({0.9}, {1}), bias = leaf<double>({-1.5}, {1});
    const TD l = which == 0   ? loss::sigmoid_loss(img, txt, tp, bias, SigmoidImpl::Tiled, 4)
                 : which == 1 ? dist::chunked_sigmoid_loss(self, img, txt, tp, bias, 4)
                              : dist::gathered_sigmoid_loss(self, img, txt, tp, bias, 4);
    std::vector<TD> out = grad(l * 2.0, {img, txt, tp, bias});
    out.push_back(l.detach());
    return out;
  };
  const std::vector<TD> tiled = run(0);
  for (int which : {1, 2}) {
    const std::vector<TD> other = run(which);
    for (size_t k = 0; k < tiled.size(); ++k)
      check_close(which == 1 ? "chunked" : "gathered", other[k].to_vector(), tiled[k].to_vector(), 1e-12);
  }
}

TEST_CASE("loss: finite-difference gradients of rectangular and negatives-only blocks", "[loss]") {
  Generator gen(6);
  for (bool positives : {true, false}) {
    INFO((positives ? "offset 2" : "negatives only"));
    loss::SigmoidBlock block;
    block.positives = positives;
    block.positive_offset = 2;
    block.divisor = 7;
    block.tile = 2;
    expect_grads([block](const std::vector<TD>& v) { return loss::sigmoid_loss_block(v[0], v[1], v[2], v[3], block); },
                 {TD::uniform({3, 4}, gen, -1, 1).set_requires_grad(), TD::uniform({5, 4}, gen, -1, 1).set_requires_grad(),
                  TD::from_vector({0.5}, {1}).set_requires_grad(), TD::from_vector({-1.0}, {1}).set_requires_grad()});
  }
}

TEST_CASE("loss: finite-difference gradients of both sigmoid implementations", "[loss]") {
  Generator gen(5);
  for (int64_t n : {1, 3, 5}) {
    const int64_t d = 4;
    const auto inputs = [&] {
      return std::vector<TD>{TD::uniform({n, d}, gen, -1, 1).set_requires_grad(),
                             TD::uniform({n, d}, gen, -1, 1).set_requires_grad(),
                             TD::from_vector({0.5}, {1}).set_requires_grad(),
                             TD::from_vector({-1.0}, {1}).set_requires_grad()};
    };
    INFO("n = " << n);
    expect_grads(
        [](const std::vector<TD>& v) { return loss::sigmoid_loss(v[0], v[1], v[2], v[3], SigmoidImpl::Naive); },
        inputs());
    expect_grads([](const std::vector<TD>& v) { return loss::sigmoid_loss(v[0], v[1], v[2], v[3]); }, inputs());
    expect_grads(
        [](const std::vector<TD>& v) { return loss::sigmoid_loss(v[0], v[1], v[2], v[3], SigmoidImpl::Tiled, 2); },
        inputs());
    expect_grads([](const std::vector<TD>& v) { return loss::softmax_loss(v[0], v[1], v[2]); },
                 {inputs()[0], inputs()[1], inputs()[2]});
  }
}

TEST_CASE("loss: sigmoid loss in float agrees with the double reference", "[loss]") {
  const int64_t n = 300, d = 32;
  Generator gen(9);
  const std::vector<double> x = unit_rows(n, d, gen), y = matching_rows(x, n, d, gen);
  // Naive sums its n*n float terms in double (sum() accumulates in double); tiled sums each tile row in float
  // and adds the row sums in double.
  for (SigmoidImpl impl : {SigmoidImpl::Naive, SigmoidImpl::Tiled}) {
    INFO((impl == SigmoidImpl::Naive ? "naive" : "tiled"));
    check_against_reference<float>(x, y, n, d, std::log(10.0), -10.0, impl, 64, 2e-5);
    check_against_reference<float>(x, y, n, d, 2.3, -1.5, impl, 64, 2e-5);
  }
}

TEST_CASE("loss: sigmoid loss stays finite and exact for large logits", "[loss]") {
  // t = e^8 ~ 2981: logits up to +-3000, where a naive log(sigmoid(x)) would give -inf.
  const int64_t n = 6, d = 3;
  Generator gen(2);
  const std::vector<double> x = unit_rows(n, d, gen), y = matching_rows(x, n, d, gen);
  for (SigmoidImpl impl : {SigmoidImpl::Naive, SigmoidImpl::Tiled}) {
    check_against_reference<double>(x, y, n, d, 8.0, 0.0, impl, 4, 1e-10);
    check_against_reference<float>(x, y, n, d, 8.0, 0.0, impl, 4, 1e-4);
  }
}

TEST_CASE("loss: sigmoid tiled gives gradients only where asked, and runs its graph twice when retained", "[loss]") {
  const int64_t n = 9, d = 4;
  Generator gen(4);
  const std::vector<double> x = unit_rows(n, d, gen), y = matching_rows(x, n, d, gen);
  const Reference ref = sigmoid_reference(x, y, n, d, std::log(10.0), -10.0);
  // Locked-image tuning: the image embeddings and t', b are constants.
  const TD img = TD::from_vector(x, {n, d}), tp = TD::from_vector({std::log(10.0)}, {1});
  const TD bias = TD::from_vector({-10.0}, {1}), txt = leaf<double>(y, {n, d});
  const TD l = loss::sigmoid_loss(img, txt, tp, bias, SigmoidImpl::Tiled, 4);
  l.backward({}, true);
  CHECK_FALSE(img.grad().defined());
  CHECK_FALSE(tp.grad().defined());
  check_close("d txt_emb", txt.grad().to_vector(), ref.d_txt, 1e-12);
  l.backward();
  std::vector<double> twice = ref.d_txt;
  for (double& v : twice) v *= 2;
  check_close("d txt_emb accumulated twice", txt.grad().to_vector(), twice, 1e-12);

  // Without any input requiring grad the loss is a plain value.
  const TD plain = loss::sigmoid_loss(img, TD::from_vector(y, {n, d}), tp, bias);
  CHECK_FALSE(plain.requires_grad());
  check_scalar("loss", plain.item(), ref.loss, 1e-12);
}

TEST_CASE("loss: sigmoid tiled reads strided embeddings and a non-unit upstream gradient", "[loss]") {
  const int64_t n = 5, d = 3;
  Generator gen(6);
  const std::vector<double> x = unit_rows(n, d, gen), y = matching_rows(x, n, d, gen);
  std::vector<double> y_t(y.size());  // y stored transposed, [d, n]
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < d; ++k) y_t[static_cast<size_t>(k * n + i)] = y[static_cast<size_t>(i * d + k)];
  const TD img = leaf<double>(x, {n, d}), txt_t = leaf<double>(y_t, {d, n});
  const TD tp = leaf<double>({0.3}, {1}), bias = leaf<double>({-2.0}, {1});
  const TD l = loss::sigmoid_loss(img, txt_t.t(), tp, bias, SigmoidImpl::Tiled, 2) * 3.0;
  l.backward();
  const Reference ref = sigmoid_reference(x, y, n, d, 0.3, -2.0);
  check_scalar("loss", l.item(), 3 * ref.loss, 1e-12);
  std::vector<double> want(y_t.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < d; ++k)
      want[static_cast<size_t>(k * n + i)] = 3 * ref.d_txt[static_cast<size_t>(i * d + k)];
  check_close("d txt_emb (transposed)", txt_t.grad().to_vector(), want, 1e-12);
  check_scalar("d bias", bias.grad().item(), 3 * ref.d_bias, 1e-12);
}

TEST_CASE("loss: sigmoid tiled keeps memory O(n*d), naive holds n x n logits", "[loss]") {
  const int64_t n = 2048, d = 16, tile = 64;
  Generator gen(8);
  const std::vector<double> x = unit_rows(n, d, gen), y = matching_rows(x, n, d, gen);
  const auto peak_of = [&](SigmoidImpl impl) {
    TF img = leaf<float>(x, {n, d}), txt = leaf<float>(y, {n, d});
    TF tp = leaf<float>({std::log(10.0)}, {1}), bias = leaf<float>({-10.0}, {1});
    Allocator& alloc = backends::of(Device::cpu()).allocator(0);
    const int64_t before = alloc.stats().bytes_in_use;
    alloc.reset_peak();
    loss::sigmoid_loss(img, txt, tp, bias, impl, tile).backward();
    return alloc.stats().peak_bytes_in_use - before;
  };
  const int64_t logits_bytes = n * n * static_cast<int64_t>(sizeof(float));  // 16 MiB
  const int64_t tiled = peak_of(SigmoidImpl::Tiled), naive = peak_of(SigmoidImpl::Naive);
  INFO("tiled peak " << tiled << " bytes, naive peak " << naive << " bytes, logits " << logits_bytes << " bytes");
  // Tiled: the two gradients (and the engine's copies into .grad) plus a tile per thread, about 0.6 MiB.
  const auto bytes = static_cast<int64_t>(sizeof(float));
  CHECK(tiled < 8 * n * d * bytes + 16 * tile * tile * bytes);
  CHECK(naive >= 2 * logits_bytes);
}

TEST_CASE("loss: softmax (CLIP) loss against a plain-loop reference", "[loss]") {
  const int64_t d = 16;
  Generator gen(10);
  for (int64_t n : {1, 2, 7, 64}) {
    INFO("n = " << n);
    const std::vector<double> x = unit_rows(n, d, gen), y = matching_rows(x, n, d, gen);
    const TD img = leaf<double>(x, {n, d}), txt = leaf<double>(y, {n, d}), tp = leaf<double>({std::log(10.0)}, {1});
    const TD l = loss::softmax_loss(img, txt, tp);
    l.backward();
    const Reference ref = softmax_reference(x, y, n, d, std::log(10.0));
    check_scalar("loss", l.item(), ref.loss, 1e-10);
    check_close("d img_emb", img.grad().to_vector(), ref.d_img, 1e-10);
    check_close("d txt_emb", txt.grad().to_vector(), ref.d_txt, 1e-10);
    check_scalar("d t_prime", tp.grad().item(), ref.d_tprime, 1e-10);
  }
}

TEST_CASE("loss: bad input names the op and the shapes", "[loss]") {
  const TF x = TF::zeros({3, 4}), p = TF::zeros({1});
  for (SigmoidImpl impl : {SigmoidImpl::Naive, SigmoidImpl::Tiled}) {
    CHECK_THROWS_WITH(loss::sigmoid_loss(x, TF::zeros({4, 4}), p, p, impl),
                      Contains("sigmoid_loss") && Contains("[3,4]") && Contains("[4,4]"));
    CHECK_THROWS_WITH(loss::sigmoid_loss(x, TF::zeros({3, 5}), p, p, impl),
                      Contains("sigmoid_loss") && Contains("[3,4]") && Contains("[3,5]"));
    CHECK_THROWS_WITH(loss::sigmoid_loss(TF::zeros({12}), x, p, p, impl),
                      Contains("sigmoid_loss") && Contains("img_emb") && Contains("[12]") && Contains("[n, d]"));
    CHECK_THROWS_WITH(loss::sigmoid_loss(x, TF::zeros({3, 4, 1}), p, p, impl),
                      Contains("sigmoid_loss") && Contains("txt_emb") && Contains("[3,4,1]"));
    CHECK_THROWS_WITH(loss::sigmoid_loss(x, x, TF::scalar(0.0f), p, impl),
                      Contains("sigmoid_loss") && Contains("t_prime") && Contains("[]") && Contains("not [1]"));
    CHECK_THROWS_WITH(loss::sigmoid_loss(x, x, TF::zeros({2}), p, impl), Contains("t_prime") && Contains("[2]"));
    CHECK_THROWS_WITH(loss::sigmoid_loss(x, x, p, TF::zeros({1, 1}), impl),
                      Contains("sigmoid_loss") && Contains("bias") && Contains("[1,1]"));
    CHECK_THROWS_WITH(loss::sigmoid_loss(TF::zeros({0, 4}), TF::zeros({0, 4}), p, p, impl),
                      Contains("sigmoid_loss") && Contains("empty batch") && Contains("[0,4]"));
    CHECK_THROWS_WITH(loss::sigmoid_loss(x, x, p, TF(), impl), Contains("sigmoid_loss") && Contains("bias"));
  }
  CHECK_THROWS_WITH(loss::sigmoid_loss(x, x, p, p, SigmoidImpl::Tiled, 0),
                    Contains("sigmoid_loss") && Contains("tile size 0"));
  CHECK_THROWS_WITH(loss::softmax_loss(x, TF::zeros({2, 4}), p),
                    Contains("softmax_loss") && Contains("[3,4]") && Contains("[2,4]"));
  CHECK_THROWS_WITH(loss::softmax_loss(x, x, TF::zeros({3})), Contains("softmax_loss") && Contains("t_prime"));
  CHECK_THROWS_WITH(loss::softmax_loss(TF::zeros({2, 3, 4}), x, p), Contains("softmax_loss") && Contains("[2,3,4]"));
}

TEST_CASE("loss: the worked example of docs/loss.md", "[loss]") {
  // Four pairs in 3-D, pair 3 mismatched (text 3 is image 0's direction), SigLIP's initial t = 10 and b = -10.
  // Every number below is printed in docs/loss.md; tests/reference/make_loss_example.py computes them with PyTorch.
  const int64_t n = 4, d = 3;
  const std::vector<double> x = {1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0.6, 0.8};
  const std::vector<double> y = {0.8, 0.6, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0};
  for (SigmoidImpl impl : {SigmoidImpl::Naive, SigmoidImpl::Tiled}) {
    INFO((impl == SigmoidImpl::Naive ? "naive" : "tiled"));
    const TD img = leaf<double>(x, {n, d}), txt = leaf<double>(y, {n, d});
    const TD tp = leaf<double>({std::log(10.0)}, {1}), bias = leaf<double>({-10.0}, {1});
    const TD l = loss::sigmoid_loss(img, txt, tp, bias, impl);
    l.backward();
    CHECK(l.item() == Approx(3.5929052).epsilon(1e-7));
    check_close("d img_emb", img.grad().to_vector(),
                {-0.5115942, -1.3210821, 0.0001135, 0.0360859, -1.2230207, 0.0001135,  //
                 0.0002043, 0.0001816, -1.25, -2.4965689, 0.0474537, 0.2980073},
                1e-7);
    check_close("d txt_emb", txt.grad().to_vector(),
                {-2.2019927, 0.0474537, 0.0034311, 0.0001135, -1.2230207, 0.0360859,  //
                 0.0001135, 0.1789179, -1.0115942, 1.25, -1.4998184, -1.9997957},
                1e-7);
    CHECK(tp.grad().item() == Approx(-2.7177368).epsilon(1e-7));
    CHECK(bias.grad().item() == Approx(-0.5558999).epsilon(1e-7));
  }
  const TD soft = loss::softmax_loss(TD::from_vector(x, {n, d}), TD::from_vector(y, {n, d}),
                                     TD::from_vector({std::log(10.0)}, {1}));
  CHECK(soft.item() == Approx(2.5708398).epsilon(1e-7));
}
