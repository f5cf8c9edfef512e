// The op table: one row per op or family of ops, saying how to make its inputs and how to call it. Every row runs
// on every registered device (the CPU, the far device of far_device.hpp, and any other the build registers) in
// float and double against the CPU's double result, and on the far device bit for bit against the CPU; its
// gradients are checked against central differences in double; it answers for its ops' PyTorch golden cases
// (tests/reference/ops_golden.json, written by tests/reference/make_golden.py), each run in double against tight
// tolerances and in float against looser ones; and it carries its ops' error cases, each of which must throw
// siglite::Error with the listed words on every device. Adding an op is adding a row.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <siglite/siglite.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <functional>
#include <iomanip>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "far_device.hpp"

namespace {

using nlohmann::json;
using namespace siglite;
using siglite::testing::far_device;
using Catch::Contains;
using TD = Tensor<double>;

// ---- The golden file ----

constexpr int kFormatVersion = 1;

const json& golden() {
  static const json doc = [] {
    const std::string path = std::string(SIGLITE_TEST_DATA) + "/ops_golden.json";
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open " + path + " (written by tests/reference/make_golden.py)");
    return json::parse(in);
  }();
  return doc;
}

Shape shape_of(const json& t) { return Shape(t.at("shape").get<std::vector<int64_t>>()); }

template <typename T>
Tensor<T> tensor_of(const json& t) {
  const std::vector<double> v = t.at("values").get<std::vector<double>>();
  return Tensor<T>::from_vector(std::vector<T>(v.begin(), v.end()), shape_of(t));
}

/// One case's inputs as siglite tensors and its parameters. It remembers what the runner read,
/// so that an input or parameter the C++ ignores fails the case instead of passing unnoticed.
template <typename T>
class Args {
 public:
  using value_type = T;

  explicit Args(const json& c) : params_(c.at("params")) {
    for (const json& in : c.at("inputs")) {
      const std::string name = in.at("name");
      if (in.at("dtype") == "int64") {
        indices_[name] = Tensor<int64_t>::from_vector(in.at("values").get<std::vector<int64_t>>(), shape_of(in));
      } else {
        Tensor<T> leaf = tensor_of<T>(in);
        leaf.set_requires_grad();
        leaves_.emplace_back(name, leaf);
        // The op sees the stored tensor through a strided view when the case asks for one.
        inputs_[name] = in.contains("permute") ? leaf.permute(in.at("permute").get<std::vector<int64_t>>()) : leaf;
      }
    }
  }

  Tensor<T> in(const std::string& name) {
    read_inputs_.insert(name);
    const auto it = inputs_.find(name);
    SIGLITE_CHECK(it != inputs_.end(), "golden case has no floating input '", name, "'");
    return it->second;
  }
  /// An input the op can do without: undefined when the case has none.
  Tensor<T> optional(const std::string& name) { return inputs_.count(name) ? in(name) : Tensor<T>(); }
  /// Every floating input, in the file's order (the operands of concat and stack).
  std::vector<Tensor<T>> all() {
    std::vector<Tensor<T>> xs;
    for (const auto& leaf : leaves_) xs.push_back(in(leaf.first));
    return xs;
  }
  Tensor<int64_t> index(const std::string& name) {
    read_inputs_.insert(name);
    const auto it = indices_.find(name);
    SIGLITE_CHECK(it != indices_.end(), "golden case has no integer input '", name, "'");
    return it->second;
  }

  double num(const std::string& key) { return param(key).template get<double>(); }
  int64_t integer(const std::string& key) { return param(key).template get<int64_t>(); }
  bool flag(const std::string& key) { return param(key).template get<bool>(); }
  std::string text(const std::string& key) { return param(key).template get<std::string>(); }
  std::vector<int64_t> list(const std::string& key) { return param(key).template get<std::vector<int64_t>>(); }
  Shape shape(const std::string& key) { return Shape(list(key)); }
  /// A number, or nullopt where the file has null (the op's default).
  std::optional<double> maybe_num(const std::string& key) {
    const json& v = param(key);
    return v.is_null() ? std::nullopt : std::optional<double>(v.template get<double>());
  }

  const std::vector<std::pair<std::string, Tensor<T>>>& leaves() const { return leaves_; }

  /// Inputs and parameters of the case that the runner never asked for.
  std::vector<std::string> unread() const {
    std::vector<std::string> out;
    for (const auto& kv : inputs_)
      if (!read_inputs_.count(kv.first)) out.push_back("input " + kv.first);
    for (const auto& kv : indices_)
      if (!read_inputs_.count(kv.first)) out.push_back("input " + kv.first);
    for (const auto& kv : params_.items())
      if (!read_params_.count(kv.key())) out.push_back("param " + kv.key());
    return out;
  }

 private:
  const json& param(const std::string& key) {
    SIGLITE_CHECK(params_.contains(key), "golden case has no parameter '", key, "'");
    read_params_.insert(key);
    return params_.at(key);
  }

  const json& params_;
  std::vector<std::pair<std::string, Tensor<T>>> leaves_;
  std::map<std::string, Tensor<T>> inputs_;
  std::map<std::string, Tensor<int64_t>> indices_;
  std::set<std::string> read_inputs_, read_params_;
};


GeluApprox gelu_approx(const std::string& name) {
  SIGLITE_CHECK(name == "tanh" || name == "none", "golden: unknown gelu approximation '", name, "'");
  return name == "tanh" ? GeluApprox::Tanh : GeluApprox::None;
}


struct Tolerance {
  const char* precision;
  double atol, rtol;
};
// Double: the two libraries differ only in summation order and in the formulas of stable
// functions; the largest difference seen is 2e-14, so these leave a margin of about 100.
constexpr Tolerance kDouble{"double", 1e-12, 1e-10};
// Float: float inputs and arithmetic against the double reference. The largest difference seen,
// 2e-5 (absolute), is layer_norm of inputs near 100, whose rounding to float alone costs a few 1e-6.
constexpr Tolerance kFloat{"float", 1e-5, 1e-4};

std::string index_string(int64_t flat, const Shape& shape) {
  std::vector<int64_t> idx(shape.size());
  for (size_t i = shape.size(); i-- > 0;) {
    idx[i] = flat % shape[i];
    flat /= shape[i];
  }
  std::ostringstream s;
  s << '[';
  for (size_t i = 0; i < idx.size(); ++i) s << (i ? "," : "") << idx[i];
  return s.str() + ']';
}

/// Checks |got - ref| <= atol + rtol * |ref| everywhere; on failure reports the largest difference,
/// where it is, and the first values of both.
template <typename T>
void compare(const std::string& where, const Tensor<T>& got, const json& ref, const Tolerance& tol) {
  const Shape shape = shape_of(ref);
  if (got.shape() != shape) {
    FAIL_CHECK(where << ": shape " << got.shape() << ", PyTorch has " << shape);
    return;
  }
  const std::vector<T> g = got.to_vector();
  const std::vector<double> r = ref.at("values").get<std::vector<double>>();
  int64_t bad = 0, worst = -1;
  double worst_diff = -1;
  for (size_t i = 0; i < r.size(); ++i) {
    const double diff = std::abs(static_cast<double>(g[i]) - r[i]);
    const bool ok = diff <= tol.atol + tol.rtol * std::abs(r[i]);  // false for NaN
    bad += !ok;
    if (!ok && (worst < 0 || !(diff <= worst_diff))) {
      worst = static_cast<int64_t>(i);
      worst_diff = diff;
    }
  }
  if (bad == 0) {
    SUCCEED();
    return;
  }
  std::ostringstream s;
  s << std::setprecision(17) << where << " of shape " << shape << ": " << bad << " of " << r.size()
    << " values outside atol " << tol.atol << " + rtol " << tol.rtol << " * |ref|\n  largest difference "
    << worst_diff << " at " << index_string(worst, shape) << ": got " << g[static_cast<size_t>(worst)]
    << ", PyTorch " << r[static_cast<size_t>(worst)] << "\n  first values (got / PyTorch):";
  for (size_t i = 0; i < std::min<size_t>(r.size(), 6); ++i) s << "\n    " << g[i] << " / " << r[i];
  FAIL_CHECK(s.str());
}

template <typename T>
void check_case(const json& c, const std::function<Tensor<T>(Args<T>&)>& run, const Tolerance& tol) {
  const std::string where = c.at("name").get<std::string>() + " [" + tol.precision + "]";
  Args<T> args(c);
  const Tensor<T> out = run(args);
  const std::vector<std::string> unread = args.unread();
  if (!unread.empty()) {
    std::ostringstream s;
    for (const auto& u : unread) s << ' ' << u;
    FAIL_CHECK(where << ": test_golden.cpp does not use" << s.str());
  }
  compare(where + " output", out, c.at("output"), tol);
  out.backward(tensor_of<T>(c.at("cotangent")));
  const json& grads = c.at("grads");
  CHECK(grads.size() == args.leaves().size());
  for (const auto& [name, leaf] : args.leaves()) {
    const Tensor<T> grad = leaf.grad().defined() ? leaf.grad() : Tensor<T>::zeros(leaf.shape());
    compare(where + " gradient of " + name, grad, grads.at(name), tol);
  }
}


// ---- The table ----

/// A call that must throw siglite::Error whose message holds every one of `words`.
struct ErrorCase {
  std::function<void(Device)> call;
  std::vector<std::string> words;
};

template <typename F>
ErrorCase fails(F f, std::vector<std::string> words) {
  return {[f](Device d) { (void)f(d); }, std::move(words)};
}

template <typename T>
struct OpCase {
  using Inputs = std::function<std::vector<TD>(Generator&)>;
  using Op = std::function<Tensor<T>(const std::vector<Tensor<T>>&)>;
  using Golden = std::map<std::string, std::function<Tensor<T>(Args<T>&)>>;

  OpCase(std::string name_, Inputs inputs_, Op op_, Golden golden_ = {}, std::vector<ErrorCase> errors_ = {},
         bool draws_ = false)
      : name(std::move(name_)), inputs(std::move(inputs_)), op(std::move(op_)), golden(std::move(golden_)),
        errors(std::move(errors_)), draws(draws_) {}

  std::string name;
  /// The inputs, as doubles on the host; each run converts them to its type and moves them to its device.
  Inputs inputs;
  Op op;
  /// The ops of ops_golden.json this row answers for, and how each is called with a case's arguments.
  Golden golden;
  std::vector<ErrorCase> errors;
  /// The op draws random numbers, which differ between float and double: each type is compared with the CPU's
  /// result of its own type instead of the double one.
  bool draws;
};

TD randn(Generator& gen, const Shape& shape) { return TD::randn(shape, gen, 0.0, 1.0, Device::cpu()); }

template <typename T>
std::vector<OpCase<T>> op_table() {
  using V = std::vector<Tensor<T>>;
  using A = Args<T>;
  const auto shapes = [](std::vector<Shape> s) {
    return [s](Generator& gen) {
      std::vector<TD> out;
      for (const Shape& sh : s) out.push_back(randn(gen, sh));
      return out;
    };
  };
  const auto positive = [](Shape s) {
    return [s](Generator& gen) { return std::vector<TD>{exp(randn(gen, s))}; };
  };
  const auto z = [](Shape s, Device d) { return Tensor<T>::zeros(s, d); };
  const auto ids = [](std::vector<int64_t> v, Device d = Device::cpu()) {
    return Tensor<int64_t>::from_vector(v, d);
  };
  const auto broadcast_error = [z](const char* op, auto f) {
    return fails([z, f](Device d) { return f(z({2, 3}, d), z({4}, d)); }, {op, "[2,3]", "[4]", "broadcast"});
  };
  const auto unary = [](const char* name, Tensor<T> (*f)(const Tensor<T>&)) {
    return std::pair<const std::string, std::function<Tensor<T>(A&)>>{name, [f](A& a) { return f(a.in("x")); }};
  };
  return {
      {"add (broadcast)", shapes({{3, 4}, {4}}), [](const V& x) { return x[0] + x[1]; },
       {{"add", [](A& a) { return add(a.in("a"), a.in("b")); }}},
       {broadcast_error("add", [](const Tensor<T>& a, const Tensor<T>& b) { return a + b; })}},
      {"sub", shapes({{2, 3, 4}, {3, 1}}), [](const V& x) { return x[0] - x[1]; },
       {{"sub", [](A& a) { return sub(a.in("a"), a.in("b")); }}},
       {broadcast_error("sub", [](const Tensor<T>& a, const Tensor<T>& b) { return a - b; })}},
      {"mul", shapes({{3, 4}, {3, 4}}), [](const V& x) { return x[0] * x[1]; },
       {{"mul", [](A& a) { return mul(a.in("a"), a.in("b")); }}},
       {broadcast_error("mul", [](const Tensor<T>& a, const Tensor<T>& b) { return a * b; })}},
      {"div", [](Generator& g) { return std::vector<TD>{randn(g, {3, 4}), exp(randn(g, {4}))}; },
       [](const V& x) { return x[0] / x[1]; }, {{"div", [](A& a) { return div(a.in("a"), a.in("b")); }}},
       {broadcast_error("div", [](const Tensor<T>& a, const Tensor<T>& b) { return a / b; })}},
      {"maximum", shapes({{3, 4}, {3, 4}}), [](const V& x) { return maximum(x[0], x[1]); },
       {{"maximum", [](A& a) { return maximum(a.in("a"), a.in("b")); }}},
       {broadcast_error("maximum", [](const Tensor<T>& a, const Tensor<T>& b) { return maximum(a, b); })}},
      {"scalar ops, neg", shapes({{5}}), [](const V& x) { return -(x[0] * T(2) + T(1)) / T(4) - T(1); },
       {{"add_scalar", [](A& a) { return a.in("x") + a.num("scalar"); }},
        {"sub_scalar", [](A& a) { return a.in("x") - a.num("scalar"); }},
        {"rsub_scalar", [](A& a) { return a.num("scalar") - a.in("x"); }},
        {"mul_scalar", [](A& a) { return a.in("x") * a.num("scalar"); }},
        {"div_scalar", [](A& a) { return a.in("x") / a.num("scalar"); }},
        {"rdiv_scalar", [](A& a) { return a.num("scalar") / a.in("x"); }},
        {"neg", [](A& a) { return -a.in("x"); }}}},
      {"exp", shapes({{7}}), [](const V& x) { return exp(x[0]); }, {unary("exp", siglite::exp<T>)}},
      {"log", positive({7}), [](const V& x) { return log(x[0]); }, {unary("log", siglite::log<T>)}},
      {"sqrt", positive({7}), [](const V& x) { return sqrt(x[0]); }, {unary("sqrt", siglite::sqrt<T>)}},
      {"rsqrt", positive({7}), [](const V& x) { return rsqrt(x[0]); }, {unary("rsqrt", siglite::rsqrt<T>)}},
      {"pow", positive({7}), [](const V& x) { return pow(x[0], 1.5); },
       {{"pow", [](A& a) { return siglite::pow(a.in("x"), a.num("exponent")); }}}},
      {"abs", shapes({{7}}), [](const V& x) { return abs(x[0]); }, {unary("abs", siglite::abs<T>)}},
      {"sin", shapes({{7}}), [](const V& x) { return sin(x[0]); }, {unary("sin", siglite::sin<T>)}},
      {"cos", shapes({{7}}), [](const V& x) { return cos(x[0]); }, {unary("cos", siglite::cos<T>)}},
      {"tanh", shapes({{7}}), [](const V& x) { return tanh(x[0]); }, {unary("tanh", siglite::tanh<T>)}},
      {"sigmoid", shapes({{7}}), [](const V& x) { return sigmoid(x[0]); }, {unary("sigmoid", siglite::sigmoid<T>)}},
      {"log_sigmoid", shapes({{7}}), [](const V& x) { return log_sigmoid(x[0]); },
       {unary("log_sigmoid", siglite::log_sigmoid<T>)}},
      {"softplus", shapes({{7}}), [](const V& x) { return softplus(x[0]); },
       {unary("softplus", siglite::softplus<T>)}},
      {"relu", shapes({{7}}), [](const V& x) { return relu(x[0]); }, {unary("relu", siglite::relu<T>)}},
      {"gelu, tanh and exact", shapes({{7}}), [](const V& x) { return gelu(x[0]) + gelu(x[0], GeluApprox::None); },
       {{"gelu", [](A& a) { return gelu(a.in("x"), gelu_approx(a.text("approximate"))); }}}},
      {"sum, mean over axes, sum_to", shapes({{3, 4, 5}}),
       [](const V& x) {
         return sum(x[0], {1}) + mean(x[0], {1, 2}, true).reshape({3, 1}) + sum_to(x[0], Shape{3, 1, 5}).reshape({3, 5});
       },
       {{"sum", [](A& a) { return siglite::sum(a.in("x"), a.list("axes"), a.flag("keepdim")); }},
        {"mean", [](A& a) { return siglite::mean(a.in("x"), a.list("axes"), a.flag("keepdim")); }},
        {"sum_to", [](A& a) { return sum_to(a.in("x"), a.shape("shape")); }}},
       {fails([z](Device d) { return sum(z({2, 3}, d), {2}); }, {"sum", "axis 2", "rank 2"}),
        fails([z](Device d) { return mean(z({2, 3}, d), {-3}); }, {"mean", "axis -3"}),
        fails([z](Device d) { return sum(z({2, 3}, d), {0, 0}); }, {"named twice"}),
        fails([z](Device d) { return sum_to(z({2, 3}, d), Shape{4}); }, {"sum_to"})}},
      {"max over an axis", shapes({{3, 4}}), [](const V& x) { return max(x[0], {1}, true); },
       {{"max", [](A& a) { return siglite::max(a.in("x"), a.list("axes"), a.flag("keepdim")); }}},
       {fails([z](Device d) { return max(z({2, 3}, d), {5}); }, {"max", "axis 5"})}},
      {"matmul 2-D", shapes({{5, 6}, {6, 3}}), [](const V& x) { return matmul(x[0], x[1]); },
       {{"matmul", [](A& a) { return matmul(a.in("a"), a.in("b")); }}},
       {fails([z](Device d) { return matmul(z({2, 3}, d), z({4, 2}, d)); }, {"matmul", "[2,3]", "[4,2]"}),
        fails([z](Device d) { return matmul(z({2, 3}, d), z({3}, d)); }, {"matmul", "two axes"}),
        fails([z](Device d) { return matmul(z({2, 2, 3}, d), z({3, 3, 1}, d)); }, {"matmul"})}},
      {"matmul transposed", shapes({{6, 5}, {3, 6}}), [](const V& x) { return matmul(x[0].t(), x[1].t()); }},
      {"matmul batched, broadcast", shapes({{2, 3, 4, 5}, {5, 2}}), [](const V& x) { return matmul(x[0], x[1]); }},
      {"linear", shapes({{2, 3, 6}, {4, 6}, {4}}), [](const V& x) { return linear(x[0], x[1], x[2]); },
       {{"linear", [](A& a) { return linear(a.in("x"), a.in("weight"), a.optional("bias")); }}},
       {fails([z](Device d) { return linear(z({2, 3, 6}, d), z({4, 5}, d)); }, {"linear", "[4,5]"}),
        fails([z](Device d) { return linear(z({2, 3, 6}, d), z({6}, d)); }, {"linear", "[out, in]"}),
        fails([z](Device d) { return linear(z({2, 3, 6}, d), z({4, 6}, d), z({5}, d)); }, {"bias", "[5]"})}},
      {"linear_gelu", shapes({{5, 6}, {4, 6}, {4}}), [](const V& x) { return linear_gelu(x[0], x[1], x[2]); },
       {{"linear_gelu",
         [](A& a) {
           return linear_gelu(a.in("x"), a.in("weight"), a.optional("bias"), gelu_approx(a.text("approximate")));
         }}},
       {fails([z](Device d) { return linear_gelu(z({2, 3, 6}, d), z({4, 5}, d)); }, {"linear_gelu", "[4,5]"}),
        fails([z](Device d) { return linear_gelu(z({2, 3, 6}, d), z({4, 6}, d), z({4, 1}, d)); },
              {"linear_gelu", "bias"})}},
      {"softmax", shapes({{3, 5}}), [](const V& x) { return softmax(x[0]); },
       {{"softmax", [](A& a) { return softmax(a.in("x"), a.integer("axis")); }}},
       {fails([z](Device d) { return softmax(z({2, 3}, d), 2); }, {"softmax", "axis 2"})}},
      {"log_softmax over axis 0", shapes({{3, 5}}), [](const V& x) { return log_softmax(x[0], 0); },
       {{"log_softmax", [](A& a) { return log_softmax(a.in("x"), a.integer("axis")); }}},
       {fails([z](Device d) { return log_softmax(z({2, 3}, d), -3); }, {"log_softmax"})}},
      {"layer_norm", shapes({{4, 6}, {6}, {6}}), [](const V& x) { return layer_norm(x[0], x[1], x[2]); },
       {{"layer_norm",
         [](A& a) { return layer_norm(a.in("x"), a.optional("weight"), a.optional("bias"), a.num("eps")); }}},
       {fails([z](Device d) { return layer_norm(z({2, 3}, d), z({2}, d), Tensor<T>()); },
              {"layer_norm", "weight", "[2]"}),
        fails([z](Device d) { return layer_norm(z({2, 3}, d), Tensor<T>(), z({4}, d)); }, {"layer_norm", "bias"})}},
      {"l2_normalize", shapes({{4, 6}}), [](const V& x) { return l2_normalize(x[0]); },
       {{"l2_normalize", [](A& a) { return l2_normalize(a.in("x"), a.integer("axis"), a.num("eps")); }}},
       {fails([z](Device d) { return l2_normalize(z({2, 3}, d), 3); }, {"l2_normalize"})}},
      {"concat, stack", shapes({{2, 3}, {2, 3}}),
       [](const V& x) { return concat(V{x[0], x[1]}, 1) + stack(V{x[0], x[1]}, 1).reshape({2, 6}); },
       {{"concat", [](A& a) { return concat(a.all(), a.integer("axis")); }},
        {"stack", [](A& a) { return stack(a.all(), a.integer("axis")); }}},
       {fails([z](Device d) { return concat<T>({z({2, 3}, d), z({2, 3}, d)}, 2); }, {"concat", "axis 2"}),
        fails([z](Device d) { return concat<T>({z({2, 3}, d), z({3, 3}, d)}, 1); }, {"concat", "[3,3]"}),
        fails([](Device) { return concat<T>({}, 0); }, {"concat", "no tensors"}),
        fails([z](Device d) { return stack<T>({z({2, 3}, d), z({3, 2}, d)}); }, {"stack"})}},
      {"index_select", shapes({{5, 3}}),
       [ids](const V& x) { return index_select(x[0], 0, ids({4, 0, 4}, x[0].device())); },
       {{"index_select", [](A& a) { return index_select(a.in("x"), a.integer("axis"), a.index("index")); }}},
       {fails([z, ids](Device d) { return index_select(z({2, 3}, d), 1, ids({0, 3}, d)); },
              {"index_select", "index 3", "[0, 3)"}),
        fails([z, ids](Device d) { return index_select(z({2, 3}, d), 1, ids({-1}, d)); }, {"index -1"}),
        fails([z, ids](Device d) { return index_select(z({2, 3}, d), 2, ids({0}, d)); }, {"index_select", "axis"})}},
      {"embedding", shapes({{6, 3}}),
       [ids](const V& x) { return embedding(x[0], ids({1, 5, 1, 0}, x[0].device()).reshape({2, 2})); },
       {{"embedding", [](A& a) { return embedding(a.in("weight"), a.index("ids")); }}},
       {fails([z, ids](Device d) { return embedding(z({5, 2}, d), ids({5}, d)); }, {"index 5", "[0, 5)"}),
        fails([z, ids](Device d) { return embedding(z({5}, d), ids({0}, d)); }, {"embedding"})}},
      {"patchify", shapes({{2, 3, 4, 4}}), [](const V& x) { return patchify(x[0], 2); },
       {{"patchify", [](A& a) { return patchify(a.in("images"), a.integer("patch")); }},
        // The ViT patch embedding: patchify, then the conv weight [D, C, P, P] as a [C*P*P, D] matrix.
        {"patch_embed",
         [](A& a) {
           const Tensor<T> w = a.in("weight");
           return matmul(patchify(a.in("images"), a.integer("patch")), w.reshape({w.size(0), -1}).t()) + a.in("bias");
         }}},
       {fails([z](Device d) { return patchify(z({1, 3, 6, 6}, d), 4); }, {"patchify", "6x6"}),
        fails([z](Device d) { return patchify(z({3, 6, 6}, d), 2); }, {"patchify", "[N, C, H, W]"})}},
      {"topk_indices (strided rows), as index_select's index", shapes({{7, 2}}),
       [](const V& x) {
         const Tensor<T> rows = x[0].t();  // [2, 7]
         return index_select(rows, 1, topk_indices(rows, 3).slice(0, 1, 2).reshape({-1}));
       },
       {},
       {fails([z](Device d) { return topk_indices(z({2, 5}, d), 6); }, {"topk_indices", "k = 6", "[0, 5]"}),
        fails([z](Device d) { return topk_indices(z({2, 5}, d), -1); }, {"k = -1"}),
        fails([](Device d) { return topk_indices(Tensor<T>::scalar(T(1), d), 1); }, {"topk_indices: a scalar"})}},
      {"views", shapes({{2, 3, 4}}),
       [](const V& x) {
         return x[0].permute({2, 0, 1}).slice(0, 1, 4, 2).transpose(1, 2).contiguous().reshape({-1}) +
                x[0].slice(2, 0, 1).expand({2, 3, 4}).unsqueeze(0).squeeze(0).reshape({-1}).slice(0, 0, 12);
       },
       {{"reshape", [](A& a) { return a.in("x").reshape(a.shape("shape")); }},
        {"transpose", [](A& a) { return a.in("x").transpose(a.integer("dim0"), a.integer("dim1")); }},
        {"permute", [](A& a) { return a.in("x").permute(a.list("dims")); }},
        {"slice",
         [](A& a) { return a.in("x").slice(a.integer("axis"), a.integer("start"), a.integer("end"), a.integer("step")); }},
        {"expand", [](A& a) { return a.in("x").expand(a.shape("shape")); }},
        {"unsqueeze", [](A& a) { return a.in("x").unsqueeze(a.integer("axis")); }},
        {"squeeze", [](A& a) { return a.in("x").squeeze(a.integer("axis")); }},
        {"contiguous", [](A& a) { return a.in("x").contiguous(); }}},
       {fails([z](Device d) { return z({2, 3}, d).expand({2, 4}); }, {"expand", "[2,3]", "[2,4]"}),
        fails([z](Device d) { return z({2, 3}, d).transpose(0, 2); }, {"transpose"}),
        fails([z](Device d) { return z({2, 3}, d).permute({0, 0}); }, {"permute", "repeated"}),
        fails([z](Device d) { return z({2, 3}, d).permute({0}); }, {"permute"}),
        fails([z](Device d) { return z({2, 3}, d).slice(3, 0, 1); }, {"slice"}),
        fails([z](Device d) { return z({2, 3}, d).slice(0, 0, 1, 0); }, {"slice", "step"}),
        fails([z](Device d) { return z({2, 3}, d).squeeze(0); }, {"squeeze"}),
        fails([z](Device d) { return z({2, 3}, d).unsqueeze(4); }, {"unsqueeze"}),
        fails([z](Device d) { return z({2, 3}, d).reshape({4, 2}); }, {"reshape", "[2,3]", "[4,2]"}),
        fails([z](Device d) { return z({2, 3}, d).reshape({-1, -1}); }, {"reshape"})}},
      {"scaled_dot_product_attention", shapes({{2, 3, 4}, {2, 5, 4}, {2, 5, 3}}),
       [](const V& x) { return scaled_dot_product_attention(x[0], x[1], x[2]); },
       {{"scaled_dot_product_attention",
         [](A& a) {
           return scaled_dot_product_attention(a.in("q"), a.in("k"), a.in("v"), a.optional("mask"), a.maybe_num("scale"));
         }}},
       {fails([z](Device d) { return scaled_dot_product_attention(z({2, 3, 4}, d), z({2, 5, 3}, d), z({2, 5, 4}, d)); },
              {"scaled_dot_product_attention", "head sizes"}),
        fails([z](Device d) { return scaled_dot_product_attention(z({2, 3, 4}, d), z({2, 5, 4}, d), z({2, 6, 4}, d)); },
              {"sequence lengths"}),
        fails([z](Device d) { return scaled_dot_product_attention(z({2, 3, 4}, d), z({3, 5, 4}, d), z({3, 5, 4}, d)); },
              {"batch axes"}),
        fails([z](Device d) {
                const Tensor<T> q = z({2, 3, 4}, d);
                return scaled_dot_product_attention(q, q, q, z({4, 3}, d));
              },
              {"mask", "[4,3]"})}},
      {"multi_head_attention, masked", shapes({{2, 3, 8}, {2, 5, 8}, {2, 5, 8}}),
       [](const V& x) {
         Tensor<T> mask = Tensor<T>::zeros({1, 1, 1, 5}, Device::cpu());
         mask.data()[4] = -std::numeric_limits<T>::infinity();
         return multi_head_attention(x[0], x[1], x[2], 2, mask.to(x[0].device()));
       },
       {{"multi_head_attention",
         [](A& a) {
           return multi_head_attention(a.in("q"), a.in("k"), a.in("v"), a.integer("heads"), {}, a.maybe_num("scale"));
         }}},
       {fails([z](Device d) { return multi_head_attention(z({2, 3, 6}, d), z({2, 3, 6}, d), z({2, 3, 6}, d), 4); },
              {"multi_head_attention", "4 heads"}),
        fails([z](Device d) { return multi_head_attention(z({3, 6}, d), z({2, 3, 6}, d), z({2, 3, 6}, d), 3); },
              {"multi_head_attention", "[3,6]"}),
        fails([z](Device d) { return multi_head_attention(z({2, 3, 6}, d), z({2, 3, 3}, d), z({2, 3, 6}, d), 3); },
              {"different widths"}),
        fails([z](Device d) { return multi_head_attention(z({2, 3, 6}, d), z({2, 3, 6}, d), z({2, 4, 6}, d), 3); },
              {"sequence lengths"}),
        fails([z](Device d) { return multi_head_attention(z({2, 3, 6}, d), z({3, 3, 6}, d), z({3, 3, 6}, d), 3); },
              {"batch sizes"}),
        fails([z](Device d) {
                const Tensor<T> x = z({2, 3, 6}, d);
                return multi_head_attention(x, x, x, 3, z({2, 3, 2}, d));
              },
              {"mask", "[2,3,2]"}),
        fails([z](Device d) {
                const Tensor<T> x = z({2, 3, 6}, d);
                return multi_head_attention(x, x, x, 3, z({2, 1, 1, 3}, d).set_requires_grad());
              },
              {"no gradient"})}},
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
      {"multi_head_attention_packed", shapes({{2, 4, 12}}), [](const V& x) { return multi_head_attention_packed(x[0], 2); },
       {{"multi_head_attention_packed",
         [](A& a) { return multi_head_attention_packed(a.in("qkv"), a.integer("heads"), {}, a.maybe_num("scale")); }}},
       {fails([z](Device d) { return multi_head_attention_packed(z({2, 3, 6}, d).slice(2, 0, 5), 1); },
              {"multi_head_attention_packed", "3 * heads"}),
        fails([z](Device d) { return multi_head_attention_packed(z({3, 6}, d), 1); }, {"[3,6]"}),
        fails([z](Device d) { return multi_head_attention_packed(z({2, 3, 6}, d), 4); },
              {"multi_head_attention_packed", "4 heads"}),
        fails([z](Device d) { return multi_head_attention_packed(z({2, 3, 6}, d), 1, z({2, 3, 2}, d)); },
              {"mask", "[2,3,2]"})}},
      {"multi_head_attention_packed_at", shapes({{2, 4, 12}}),
       [](const V& x) { return multi_head_attention_packed_at(x[0], 3, 2); },
       {{"multi_head_attention_packed_at",
         [](A& a) {
           return multi_head_attention_packed_at(a.in("qkv"), a.integer("at"), a.integer("heads"), {},
                                                 a.maybe_num("scale"));
         }}},
       {fails([z](Device d) { return multi_head_attention_packed_at(z({2, 3, 6}, d), 3, 1); },
              {"multi_head_attention_packed_at", "position 3", "[2,3,6]"}),
        fails([z](Device d) { return multi_head_attention_packed_at(z({2, 3, 6}, d), -1, 1); }, {"position -1"}),
        fails([z](Device d) { return multi_head_attention_packed_at(z({2, 3, 6}, d), 0, 4); }, {"4 heads"}),
        fails([z](Device d) { return multi_head_attention_packed_at(z({2, 3, 6}, d), 0, 1, z({2, 1, 2, 3}, d)); },
              {"mask", "[2,1,2,3]", "[2,1,3,3]"}),
        fails([z](Device d) { return multi_head_attention_packed_at(z({2, 3, 6}, d), 0, 1, z({2, 1, 1, 2}, d)); },
              {"mask", "[2,1,1,2]"})}},
      {"sigmoid_loss naive", shapes({{6, 4}, {6, 4}, {1}, {1}}),
       [](const V& x) { return loss::sigmoid_loss(x[0], x[1], x[2], x[3], loss::SigmoidImpl::Naive); }},
      {"sigmoid_loss tiled", shapes({{7, 4}, {7, 4}, {1}, {1}}),
       [](const V& x) { return loss::sigmoid_loss(x[0], x[1], x[2], x[3], loss::SigmoidImpl::Tiled, 3); }},
      {"sigmoid_loss_block", shapes({{5, 4}, {7, 4}, {1}, {1}}),
       [](const V& x) {
         loss::SigmoidBlock block;
         block.positive_offset = 1;
         block.divisor = 9;
         block.tile = 3;
         return loss::sigmoid_loss_block(x[0], x[1], x[2], x[3], block);
       }},
      {"sigmoid_loss_block negatives", shapes({{5, 4}, {4, 4}, {1}, {1}}),
       [](const V& x) {
         loss::SigmoidBlock block;
         block.positives = false;
         block.divisor = 9;
         block.tile = 2;
         return loss::sigmoid_loss_block(x[0], x[1], x[2], x[3], block);
       }},
      {"softmax_loss", shapes({{6, 4}, {6, 4}, {1}}), [](const V& x) { return loss::softmax_loss(x[0], x[1], x[2]); }},
      {"to the host and back", shapes({{3, 2}}),
       [](const V& x) { return (x[0].to(Device::cpu()) * T(3)).to(x[0].device()); }},
      {"cast from int64 and the other float type, eq, as factors", shapes({{5}}),
       [ids](const V& x) {
         using Other = std::conditional_t<std::is_same_v<T, float>, double, float>;
         const Device d = x[0].device();
         const Tensor<T> v = x[0].detach(), zero = Tensor<T>::scalar(T(0), d);
         return x[0] * cast<T>(ids({3, -1, 0, 2, 7}, d)) + x[0] * eq(maximum(v, zero), v) +
                x[0] * cast<T>(Tensor<Other>::from_vector({0.5, 0.25, -1.5, 2, 5}, d));
       },
       {},
       {fails([z](Device d) { return eq(z({2, 3}, d), z({4}, d)); }, {"eq", "[2,3]", "[4]"}),
        fails([z](Device d) { return cast<double>(z({2}, d).set_requires_grad()); },
              {"cast: the input requires a gradient", "detach()"})}},
      {"arange, randn, uniform, bernoulli and dropout, drawn on the device", shapes({{2, 6}}),
       [](const V& x) {
         Generator gen(17);
         const Device d = x[0].device();
         return dropout(x[0], 0.3, gen, true) * Tensor<T>::arange(T(-1), T(2), T(0.25), d).reshape({2, 6}) +
                Tensor<T>::randn({2, 6}, gen, T(1), T(2), d) * Tensor<T>::uniform({6}, gen, T(-1), T(1), d) +
                x[0] * Tensor<T>::bernoulli({2, 1}, gen, T(0.5), T(3), d);
       },
       {},
       {fails([z](Device d) {
                Generator gen(1);
                return dropout(z({2, 3}, d), 1.5, gen, true);
              },
              {"dropout", "1.5"}),
        fails([](Device d) {
                Generator gen(1);
                return Tensor<T>::bernoulli({2}, gen, T(1.5), T(1), d);
              },
              {"bernoulli", "1.5"}),
        fails([](Device d) { return Tensor<T>::arange(T(0), T(1), T(0), d); }, {"arange", "step is zero"})},
       true},
  };
}

/// Every device of every registered backend (the far one registered first).
std::vector<Device> devices() {
  far_device();
  std::vector<Device> out;
  for (size_t t = 0; t < kDeviceTypes; ++t) {
    const auto type = static_cast<DeviceType>(t);
    for (int i = 0; i < backends::device_count(type); ++i) out.emplace_back(type, i);
  }
  return out;
}

/// The row's inputs in T (from the same doubles whatever T: a double run from float's inputs when `as_float`), on
/// `device`, each requiring a gradient.
template <typename T>
std::vector<Tensor<T>> inputs_of(const OpCase<T>& c, Device device, bool as_float) {
  Generator gen(7);
  std::vector<Tensor<T>> xs;
  for (const TD& x : c.inputs(gen)) {
    const Tensor<T> v = as_float ? cast<T>(cast<float>(x)) : cast<T>(x);
    xs.push_back(v.to(device).set_requires_grad());
  }
  return xs;
}

/// The op on `device`: its output and the gradient of sum(output * weights) with respect to every input, all
/// copied to the host as doubles.
template <typename T>
std::vector<std::vector<double>> run_on(const OpCase<T>& c, Device device, bool as_float = false) {
  const std::vector<Tensor<T>> xs = inputs_of(c, device, as_float);
  const Tensor<T> y = c.op(xs);
  REQUIRE(y.device() == device);
  std::vector<std::vector<double>> out;
  const auto host = [&out](const Tensor<T>& t) {
    const std::vector<T> v = t.to_vector();
    out.emplace_back(v.begin(), v.end());
  };
  host(y);
  Generator gen(8);
  sum(y * cast<T>(TD::randn(y.shape(), gen, 0.0, 1.0, Device::cpu())).to(device)).backward();
  for (const Tensor<T>& x : xs) {
    REQUIRE(x.grad().defined());
    CHECK(x.grad().device() == device);
    host(x.grad());
  }
  return out;
}

/// got within atol + rtol * |ref| of ref, element by element (NaN nowhere, equal infinities allowed).
void check_close(const std::vector<std::vector<double>>& got, const std::vector<std::vector<double>>& ref,
                 const Tolerance& tol) {
  REQUIRE(got.size() == ref.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO((i == 0 ? std::string("output") : "gradient of input " + std::to_string(i - 1)) << " [" << tol.precision << "]");
    REQUIRE(got[i].size() == ref[i].size());
    for (size_t k = 0; k < got[i].size(); ++k) {
      const double g = got[i][k], r = ref[i][k];
      if (g == r) continue;
      INFO("element " << k << ": " << std::setprecision(17) << g << " against " << r);
      CHECK(std::abs(g - r) <= tol.atol + tol.rtol * std::abs(r));
    }
  }
}

template <typename T>
void check_devices(const Tolerance& tol) {
  const std::vector<OpCase<T>> table = op_table<T>();
  const std::vector<OpCase<double>> reference = op_table<double>();
  REQUIRE(table.size() == reference.size());
  for (size_t r = 0; r < table.size(); ++r) {
    const OpCase<T>& c = table[r];
    INFO(c.name);
    const auto expect = c.draws ? run_on(c, Device::cpu()) : run_on(reference[r], Device::cpu(), std::is_same_v<T, float>);
    const auto on_cpu = run_on(c, Device::cpu());
    for (const Device d : devices()) {
      INFO("on " << d);
      const auto got = d == Device::cpu() ? on_cpu : run_on(c, d);
      check_close(got, expect, tol);
      if (d == far_device()) CHECK(got == on_cpu);  // the far device runs the CPU's kernels: the same bits
    }
  }
}

}  // namespace

TEST_CASE("op table: every row on every device against the CPU's double result, on the far device bit for bit "
          "(float)", "[ops]") {
  check_devices<float>(kFloat);
}

TEST_CASE("op table: every row on every device against the CPU's double result, on the far device bit for bit "
          "(double)", "[ops]") {
  check_devices<double>(kDouble);
}

/// Every row's gradients against gradcheck's finite differences, at its defaults for T: the largest error over the
/// rows is 2e-11 in double (step 2^-10), 5e-5 in float (step 2^-7), so the defaults (1e-10 and 5e-4) leave a margin
/// of five to ten on the worst row and far more on most. A few rows are steep near their inputs (1/b, log, sqrt and
/// rsqrt at small positive values): in double the truncation error h^4 f^(5) / 30 reaches 2e-10 there, and a step
/// of 2^-12 brings it to 2e-12.
template <typename T>
void gradcheck_rows() {
  const std::set<std::string> steep = {"div", "log", "sqrt", "rsqrt"};
  for (const OpCase<T>& c : op_table<T>()) {
    INFO(c.name);
    GradcheckOptions options;
    if (std::is_same_v<T, double> && steep.count(c.name)) options.eps = std::ldexp(1.0, -12);
    const GradcheckResult r = gradcheck<T>(c.op, inputs_of(c, Device::cpu(), false), options);
    INFO(r.message << " (largest error " << r.max_abs_error << ", relative " << r.max_rel_error << ")");
    CHECK(r.ok);
  }
}

TEST_CASE("op table: every row's gradients agree with finite differences in double", "[ops][gradcheck]") {
  gradcheck_rows<double>();
}

TEST_CASE("op table: every row's gradients agree with finite differences in float, through the float fast paths",
          "[ops][gradcheck]") {
  gradcheck_rows<float>();
}

TEST_CASE("op table: every error case throws siglite::Error with its words, on every device", "[ops][errors]") {
  for (const OpCase<float>& c : op_table<float>())
    for (size_t k = 0; k < c.errors.size(); ++k)
      for (const Device d : devices()) {
        INFO(c.name << ", error case " << k << ", on " << d);
        try {
          c.errors[k].call(d);
          FAIL_CHECK("no error");
        } catch (const Error& e) {
          for (const std::string& w : c.errors[k].words) CHECK_THAT(std::string(e.what()), Contains(w));
        }
      }
}

TEST_CASE("op table: the golden file and the rows agree", "[ops][golden]") {
  const json& doc = golden();
  REQUIRE(doc.at("format_version").get<int>() == kFormatVersion);
  std::map<std::string, int> answered;  // op of the file -> rows that answer for it
  for (const OpCase<double>& c : op_table<double>())
    for (const auto& g : c.golden) ++answered[g.first];
  std::set<std::string> names, used;
  for (const json& c : doc.at("cases")) {
    const std::string name = c.at("name"), op = c.at("op");
    INFO("case " << name << " with op '" << op << "'");
    CHECK(names.insert(name).second);  // case names are unique
    CHECK(answered[op] == 1);          // exactly one row runs it: none is skipped
    used.insert(op);
  }
  for (const auto& [op, rows] : answered) {
    INFO("op " << op << " of the table has no golden case");
    CHECK(used.count(op) == 1);
  }
}

TEST_CASE("op table: every row's golden cases match PyTorch, in double and in float", "[ops][golden]") {
  const std::vector<OpCase<double>> doubles = op_table<double>();
  const std::vector<OpCase<float>> floats = op_table<float>();
  for (size_t r = 0; r < doubles.size(); ++r)
    for (const auto& [op, run] : doubles[r].golden)
      for (const json& c : golden().at("cases")) {
        if (c.at("op") != op) continue;
        check_case(c, run, kDouble);
        check_case(c, floats[r].golden.at(op), kFloat);
      }
}
