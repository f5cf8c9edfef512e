// loss_explained: the sigmoid loss of docs/loss.md's worked example, one step at a time. Every table
// is computed with siglite's ops and autograd, then checked against the formula written out by hand
// with plain loops; the program fails if the two disagree.
#include <cmath>
#include <cstdio>
#include <siglite/siglite.hpp>
#include <string>
#include <vector>

using namespace siglite;
using T = Tensor<double>;

namespace {

/// Prints a [rows, cols] tensor as a table with a title, column headers and one labelled line per row.
void print_table(const std::string& title, const T& m, const std::string& rows, const std::string& cols,
                 int digits = 7) {
  std::printf("%s\n%-9s", title.c_str(), "");
  for (int64_t j = 0; j < m.size(1); ++j) std::printf("%13s", (cols + " " + std::to_string(j)).c_str());
  for (int64_t i = 0; i < m.size(0); ++i) {
    std::printf("\n%-9s", (rows + " " + std::to_string(i)).c_str());
    for (int64_t j = 0; j < m.size(1); ++j) std::printf("%13.*f", digits, m.at({i, j}));
  }
  std::printf("\n");
}

double worst = 0;  // the largest difference between siglite and the hand-written formula so far

/// Compares siglite's values with the formula's and prints the largest difference.
void check(const T& siglite_values, const std::vector<double>& formula) {
  const std::vector<double> v = siglite_values.to_vector();
  double diff = v.size() == formula.size() ? 0 : INFINITY;
  for (size_t k = 0; k < v.size() && k < formula.size(); ++k) diff = std::max(diff, std::fabs(v[k] - formula[k]));
  worst = std::max(worst, diff);
  std::printf("  (the hand-written formula agrees to %.1e)\n\n", diff);
}

}  // namespace

int main() {
  const int64_t n = 4, d = 3;  // four (image, text) pairs, three dimensions: docs/loss.md's worked example

  // 1. The embeddings, one row per example, already L2-normalised: image i and text i belong together.
  // Pair 3 is deliberately mismatched: text 3 points along image 0 and has nothing in common with image 3,
  // so (image 0, text 3) is a hard negative.
  const std::vector<double> xs = {1, 0,   0,     // image 0
                                  0, 1,   0,     // image 1
                                  0, 0,   1,     // image 2
                                  0, 0.6, 0.8};  // image 3
  const std::vector<double> ys = {0.8, 0.6, 0,   // text 0
                                  0,   1,   0,   // text 1
                                  0,   0,   1,   // text 2
                                  1,   0,   0};  // text 3: image 0's direction, not image 3's
  T x = T::from_vector(xs, {n, d}).set_requires_grad();
  T y = T::from_vector(ys, {n, d}).set_requires_grad();
  T t_prime = T::from_vector({std::log(10.0)}, {1}).set_requires_grad();  // t' = log t, SigLIP's initial t = 10
  T b = T::from_vector({-10.0}, {1}).set_requires_grad();                 // b, SigLIP's initial bias
  const double t = std::exp(t_prime.item()), bias = b.item();
  std::printf("t = exp(t') = %.7f, b = %.7f, n = %lld pairs\n\n", t, bias, static_cast<long long>(n));
  print_table("X: image embeddings (each row has length 1)", x, "image", "dim");
  std::printf("\n");
  print_table("Y: text embeddings (each row has length 1)", y, "text", "dim");
  std::printf("\n");

  // The same steps written out by hand, pair by pair, for the checks below.
  std::vector<double> s(n * n), z(n * n), term(n * n), p(n * n), g(n * n), dx(n * d, 0.0), dy(n * d, 0.0);
  double hand_loss = 0, hand_db = 0, hand_dt = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      const size_t ij = static_cast<size_t>(i * n + j);
      for (int64_t k = 0; k < d; ++k) s[ij] += xs[static_cast<size_t>(i * d + k)] * ys[static_cast<size_t>(j * d + k)];
      const double label = i == j ? 1.0 : -1.0;
      z[ij] = t * s[ij] + bias;                              // the logit
      term[ij] = std::log(1.0 + std::exp(-label * z[ij]));   // -log sigmoid(label * z)
      p[ij] = 1.0 / (1.0 + std::exp(-z[ij]));                // sigmoid(z)
      g[ij] = (p[ij] - (i == j ? 1.0 : 0.0)) / double(n);    // d loss / d z
      hand_loss += term[ij] / double(n);
      hand_db += g[ij];
      hand_dt += g[ij] * t * s[ij];
      for (int64_t k = 0; k < d; ++k) {
        dx[static_cast<size_t>(i * d + k)] += t * g[ij] * ys[static_cast<size_t>(j * d + k)];
        dy[static_cast<size_t>(j * d + k)] += t * g[ij] * xs[static_cast<size_t>(i * d + k)];
      }
    }

  // 2. The logits: one score per (image, text) pair, z_ij = t * <x_i, y_j> + b, from the cosine similarities.
  const T similarity = matmul(x, y.t()).detach();
  print_table("X Y^T: the cosine similarity of each (image, text) pair", similarity, "image", "text");
  check(similarity, s);
  const T logits = (matmul(x, y.t()) * exp(t_prime) + b).detach();
  print_table("z = t * X Y^T + b: the logits", logits, "image", "text");
  check(logits, z);

  // 3. The labels: +1 on the diagonal (the positives), -1 everywhere else (the negatives).
  T labels = T::full({n, n}, -1.0);
  for (int64_t i = 0; i < n; ++i) labels.at({i, i}) = 1.0;
  print_table("label: +1 for a matching pair, -1 otherwise", labels, "image", "text", 0);
  std::printf("\n");

  // 4. Each pair is a yes/no question scored on its own: -log sigmoid(label * z) = log(1 + exp(-label * z)).
  T zleaf = logits.clone().set_requires_grad();  // a leaf copy of the logits, so autograd gives d loss / d z
  const T terms = -log_sigmoid(labels * zleaf);
  print_table("sigmoid(z): the probability that the pair matches", sigmoid(logits), "image", "text");
  check(sigmoid(logits), p);
  print_table("-log sigmoid(label * z): the loss of each pair", terms.detach(), "image", "text");
  check(terms.detach(), term);

  // 5. The loss: the sum over all n*n pairs divided by n (not n*n), once by hand and once by the library.
  const T from_terms = sum(terms) / double(n);
  const T loss = loss::sigmoid_loss(x, y, t_prime, b);  // siglite's fused (tiled) loss
  std::printf("loss = sum of the pair losses / n = %.7f (from the table), %.7f (loss::sigmoid_loss)\n",
              from_terms.item(), loss.item());
  check(T::from_vector({from_terms.item(), loss.item()}), {hand_loss, hand_loss});

  // 6. The gradients, by autograd: backward() through the table above and through loss::sigmoid_loss.
  from_terms.backward();
  loss.backward();
  print_table("d loss / d z = (sigmoid(z) - [i == j]) / n", zleaf.grad(), "image", "text");
  check(zleaf.grad(), g);
  std::printf("d loss / d t' = %.7f   (sum of d loss/d z * t * <x_i, y_j>; < 0: raise t)\n", t_prime.grad().item());
  std::printf("d loss / d b  = %.7f   (sum of d loss/d z; < 0: raise b)\n", b.grad().item());
  check(T::from_vector({t_prime.grad().item(), b.grad().item()}), {hand_dt, hand_db});
  print_table("d loss / d X = t * (d loss/d z) @ Y", x.grad(), "image", "dim");
  check(x.grad(), dx);
  print_table("d loss / d Y = t * (d loss/d z)^T @ X", y.grad(), "text", "dim");
  check(y.grad(), dy);

  const bool ok = worst < 1e-12;
  std::printf("%s: siglite and the formulas differ by at most %.1e\n", ok ? "ok" : "MISMATCH", worst);
  return ok ? 0 : 1;
}
