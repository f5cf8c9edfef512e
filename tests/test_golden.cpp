// Golden values: every op's output and gradients compared with PyTorch's, read from
// tests/reference/ops_golden.json (written by tests/reference/make_golden.py). Each case runs in
// double precision against tight tolerances, and again in float against looser ones.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <siglite/siglite.hpp>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace {

using nlohmann::json;
using namespace siglite;

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

enum class Family { Elementwise, Reduce, Matmul, NN, Index, View };

/// How the C++ runs one op of the file, in both precisions.
struct Op {
  Family family;
  Tensor<double> (*run_double)(Args<double>&);
  Tensor<float> (*run_float)(Args<float>&);
};

template <typename F>
Op op(Family family, F f) {
  return {family, f, f};
}

GeluApprox gelu_approx(const std::string& name) {
  SIGLITE_CHECK(name == "tanh" || name == "none", "golden: unknown gelu approximation '", name, "'");
  return name == "tanh" ? GeluApprox::Tanh : GeluApprox::None;
}

/// Every op name the file may use. A case whose op is missing here fails the suite.
const std::map<std::string, Op>& ops() {
  using F = Family;
  static const std::map<std::string, Op> table = {
      {"add", op(F::Elementwise, [](auto& a) { return add(a.in("a"), a.in("b")); })},
      {"sub", op(F::Elementwise, [](auto& a) { return sub(a.in("a"), a.in("b")); })},
      {"mul", op(F::Elementwise, [](auto& a) { return mul(a.in("a"), a.in("b")); })},
      {"div", op(F::Elementwise, [](auto& a) { return div(a.in("a"), a.in("b")); })},
      {"maximum", op(F::Elementwise, [](auto& a) { return maximum(a.in("a"), a.in("b")); })},
      {"add_scalar", op(F::Elementwise, [](auto& a) { return a.in("x") + a.num("scalar"); })},
      {"sub_scalar", op(F::Elementwise, [](auto& a) { return a.in("x") - a.num("scalar"); })},
      {"rsub_scalar", op(F::Elementwise, [](auto& a) { return a.num("scalar") - a.in("x"); })},
      {"mul_scalar", op(F::Elementwise, [](auto& a) { return a.in("x") * a.num("scalar"); })},
      {"div_scalar", op(F::Elementwise, [](auto& a) { return a.in("x") / a.num("scalar"); })},
      {"rdiv_scalar", op(F::Elementwise, [](auto& a) { return a.num("scalar") / a.in("x"); })},
      {"neg", op(F::Elementwise, [](auto& a) { return -a.in("x"); })},
      {"exp", op(F::Elementwise, [](auto& a) { return siglite::exp(a.in("x")); })},
      {"log", op(F::Elementwise, [](auto& a) { return siglite::log(a.in("x")); })},
      {"sqrt", op(F::Elementwise, [](auto& a) { return siglite::sqrt(a.in("x")); })},
      {"rsqrt", op(F::Elementwise, [](auto& a) { return rsqrt(a.in("x")); })},
      {"pow", op(F::Elementwise, [](auto& a) { return siglite::pow(a.in("x"), a.num("exponent")); })},
      {"abs", op(F::Elementwise, [](auto& a) { return siglite::abs(a.in("x")); })},
      {"sin", op(F::Elementwise, [](auto& a) { return siglite::sin(a.in("x")); })},
      {"cos", op(F::Elementwise, [](auto& a) { return siglite::cos(a.in("x")); })},
      {"tanh", op(F::Elementwise, [](auto& a) { return siglite::tanh(a.in("x")); })},
      {"sigmoid", op(F::Elementwise, [](auto& a) { return sigmoid(a.in("x")); })},
      {"log_sigmoid", op(F::Elementwise, [](auto& a) { return log_sigmoid(a.in("x")); })},
      {"softplus", op(F::Elementwise, [](auto& a) { return softplus(a.in("x")); })},
      {"relu", op(F::Elementwise, [](auto& a) { return relu(a.in("x")); })},
      {"gelu", op(F::Elementwise, [](auto& a) { return gelu(a.in("x"), gelu_approx(a.text("approximate"))); })},
      {"sum", op(F::Reduce, [](auto& a) { return siglite::sum(a.in("x"), a.list("axes"), a.flag("keepdim")); })},
      {"mean", op(F::Reduce, [](auto& a) { return siglite::mean(a.in("x"), a.list("axes"), a.flag("keepdim")); })},
      {"max", op(F::Reduce, [](auto& a) { return siglite::max(a.in("x"), a.list("axes"), a.flag("keepdim")); })},
      {"sum_to", op(F::Reduce, [](auto& a) { return sum_to(a.in("x"), a.shape("shape")); })},
      {"matmul", op(F::Matmul, [](auto& a) { return matmul(a.in("a"), a.in("b")); })},
      {"softmax", op(F::NN, [](auto& a) { return softmax(a.in("x"), a.integer("axis")); })},
      {"log_softmax", op(F::NN, [](auto& a) { return log_softmax(a.in("x"), a.integer("axis")); })},
      {"layer_norm", op(F::NN, [](auto& a) {
         return layer_norm(a.in("x"), a.optional("weight"), a.optional("bias"), a.num("eps"));
       })},
      {"l2_normalize", op(F::NN, [](auto& a) { return l2_normalize(a.in("x"), a.integer("axis"), a.num("eps")); })},
      {"scaled_dot_product_attention", op(F::NN, [](auto& a) {
         return scaled_dot_product_attention(a.in("q"), a.in("k"), a.in("v"), a.optional("mask"),
                                             a.maybe_num("scale"));
       })},
      {"multi_head_attention", op(F::NN, [](auto& a) {
         return multi_head_attention(a.in("q"), a.in("k"), a.in("v"), a.integer("heads"), {}, a.maybe_num("scale"));
       })},
      {"multi_head_attention_packed", op(F::NN, [](auto& a) {
         return multi_head_attention_packed(a.in("qkv"), a.integer("heads"), {}, a.maybe_num("scale"));
       })},
      {"multi_head_attention_packed_at", op(F::NN, [](auto& a) {
         return multi_head_attention_packed_at(a.in("qkv"), a.integer("at"), a.integer("heads"), {}, a.maybe_num("scale"));
       })},
      {"linear", op(F::Matmul, [](auto& a) { return linear(a.in("x"), a.in("weight"), a.optional("bias")); })},
      {"linear_gelu", op(F::Matmul, [](auto& a) {
         return linear_gelu(a.in("x"), a.in("weight"), a.optional("bias"), gelu_approx(a.text("approximate")));
       })},
      {"concat", op(F::Index, [](auto& a) { return concat(a.all(), a.integer("axis")); })},
      {"stack", op(F::Index, [](auto& a) { return stack(a.all(), a.integer("axis")); })},
      {"index_select", op(F::Index, [](auto& a) {
         return index_select(a.in("x"), a.integer("axis"), a.index("index"));
       })},
      {"embedding", op(F::Index, [](auto& a) { return embedding(a.in("weight"), a.index("ids")); })},
      {"patchify", op(F::Index, [](auto& a) { return patchify(a.in("images"), a.integer("patch")); })},
      // The ViT patch embedding: patchify, then the conv weight [D, C, P, P] as a [C*P*P, D] matrix.
      {"patch_embed", op(F::Index, [](auto& a) {
         const auto w = a.in("weight");
         return matmul(patchify(a.in("images"), a.integer("patch")), w.reshape({w.size(0), -1}).t()) + a.in("bias");
       })},
      {"reshape", op(F::View, [](auto& a) { return a.in("x").reshape(a.shape("shape")); })},
      {"transpose", op(F::View, [](auto& a) { return a.in("x").transpose(a.integer("dim0"), a.integer("dim1")); })},
      {"permute", op(F::View, [](auto& a) { return a.in("x").permute(a.list("dims")); })},
      {"slice", op(F::View, [](auto& a) {
         return a.in("x").slice(a.integer("axis"), a.integer("start"), a.integer("end"), a.integer("step"));
       })},
      {"expand", op(F::View, [](auto& a) { return a.in("x").expand(a.shape("shape")); })},
      {"unsqueeze", op(F::View, [](auto& a) { return a.in("x").unsqueeze(a.integer("axis")); })},
      {"squeeze", op(F::View, [](auto& a) { return a.in("x").squeeze(a.integer("axis")); })},
      {"contiguous", op(F::View, [](auto& a) { return a.in("x").contiguous(); })},
  };
  return table;
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
void check_case(const json& c, Tensor<T> (*run)(Args<T>&), const Tolerance& tol) {
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

/// Runs every case of the family, one section per case.
void run_family(Family family) {
  for (const json& c : golden().at("cases")) {
    const auto it = ops().find(c.at("op").get<std::string>());
    if (it == ops().end() || it->second.family != family) continue;
    DYNAMIC_SECTION(c.at("name").get<std::string>()) {
      check_case(c, it->second.run_double, kDouble);
      check_case(c, it->second.run_float, kFloat);
    }
  }
}

}  // namespace

TEST_CASE("golden: the file and the C++ runners agree", "[golden]") {
  const json& doc = golden();
  REQUIRE(doc.at("format_version").get<int>() == kFormatVersion);
  std::set<std::string> names, used_ops;
  for (const json& c : doc.at("cases")) {
    const std::string name = c.at("name"), op_name = c.at("op");
    INFO("case " << name << " with op '" << op_name << "'");
    CHECK(names.insert(name).second);  // case names are unique
    // An op test_golden.cpp does not know would be skipped by every family: fail instead.
    CHECK(ops().count(op_name) == 1);
    used_ops.insert(op_name);
  }
  for (const auto& kv : ops()) {
    INFO("op " << kv.first << " has no golden case");
    CHECK(used_ops.count(kv.first) == 1);
  }
}

TEST_CASE("golden: elementwise ops match PyTorch", "[golden]") { run_family(Family::Elementwise); }
TEST_CASE("golden: reductions match PyTorch", "[golden]") { run_family(Family::Reduce); }
TEST_CASE("golden: matmul matches PyTorch", "[golden]") { run_family(Family::Matmul); }
TEST_CASE("golden: softmax, layer_norm, l2_normalize, attention match PyTorch", "[golden]") {
  run_family(Family::NN);
}
TEST_CASE("golden: concat, stack, index_select, embedding, patchify match PyTorch", "[golden]") {
  run_family(Family::Index);
}
TEST_CASE("golden: views match PyTorch", "[golden]") { run_family(Family::View); }
