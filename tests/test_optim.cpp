// Optimizers: AdamW, SGD and LION trajectories against PyTorch (tests/reference/optim_golden.json,
// written by tests/reference/make_optim_golden.py), schedules, clipping, parameter groups, state
// save / restore and bad input.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <siglite/siglite.hpp>

#include <cmath>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "siglite/nn/module.hpp"
#include "siglite/optim/optim.hpp"

namespace {

using namespace siglite;
using namespace siglite::optim;
using nlohmann::json;
using Catch::Contains;
using TF = Tensor<float>;

const json& golden() {
  static const json doc = [] {
    const std::string path = std::string(SIGLITE_TEST_DATA) + "/optim_golden.json";
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot open " + path + " (written by tests/reference/make_optim_golden.py)");
    return json::parse(in);
  }();
  return doc;
}

TF tensor_of(const json& t) {
  const std::vector<double> v = t.at("values").get<std::vector<double>>();
  return TF::from_vector(std::vector<float>(v.begin(), v.end()), Shape(t.at("shape").get<std::vector<int64_t>>()));
}

/// Sets a leaf's gradient, as backward would leave it (an owned contiguous buffer).
void set_grad(const TF& p, const TF& g) { p.impl().grad = g.clone().impl_ptr(); }

TF leaf(const std::vector<float>& v, const Shape& shape) {
  TF t = TF::from_vector(v, shape);
  t.set_requires_grad();
  return t;
}

/// A module that takes parameters by dotted path, creating the submodules on the way.
class Bag : public nn::Module<float> {
 public:
  void add(const std::string& path, const Shape& shape, bool trainable = true) {
    const size_t dot = path.find('.');
    if (dot == std::string::npos) {
      TF p = register_parameter(path, TF::ones(shape));
      if (!trainable) p.set_requires_grad(false);
      return;
    }
    std::shared_ptr<Bag>& child = children_[path.substr(0, dot)];
    if (!child) child = register_module(path.substr(0, dot), std::make_shared<Bag>());
    child->add(path.substr(dot + 1), shape, trainable);
  }

 private:
  std::map<std::string, std::shared_ptr<Bag>> children_;
};

std::vector<std::string> names_of(const ParamGroup& g) {
  std::vector<std::string> out;
  for (const auto& np : g.params) out.push_back(np.first);
  return out;
}

/// Three parameters with deterministic values: a matrix, a bias and a 3-axis tensor.
NamedParams make_params() {
  NamedParams out;
  const Shape shapes[] = {{3, 4}, {4}, {2, 1, 3}};
  const char* names[] = {"layer.weight", "layer.bias", "other.weight"};
  for (int i = 0; i < 3; ++i) {
    std::vector<float> v(static_cast<size_t>(shapes[i].numel()));
    for (size_t j = 0; j < v.size(); ++j)
      v[j] = static_cast<float>(std::sin(1.7 * static_cast<double>(j) + i) + 0.1 * i);
    out.emplace_back(names[i], leaf(v, shapes[i]));
  }
  return out;
}

/// A deterministic gradient for parameter i at step k; parameter 1 gets none at step 2.
void set_step_grads(const NamedParams& params, int k) {
  for (size_t i = 0; i < params.size(); ++i) {
    const TF& p = params[i].second;
    if (i == 1 && k == 2) {
      p.zero_grad();
      continue;
    }
    std::vector<float> g(static_cast<size_t>(p.numel()));
    for (size_t j = 0; j < g.size(); ++j)
      g[j] = static_cast<float>(std::cos(0.9 * static_cast<double>(j) + 2.1 * k + static_cast<double>(i)) * (1 + k));
    set_grad(p, TF::from_vector(g, p.shape()));
  }
}

NamedParams copy_params(const NamedParams& params) {
  NamedParams out;
  for (const auto& [n, p] : params) {
    TF c = p.clone();
    c.set_requires_grad();
    out.emplace_back(n, c);
  }
  return out;
}

std::unique_ptr<Optimizer> make_optimizer(const std::string& kind, const NamedParams& params) {
  std::vector<ParamGroup> groups = split_decay(params);
  groups = with_lr_mult(groups, "other.", 0.5);
  if (kind == "adamw") {
    AdamWOptions o;
    o.lr = 0.05;
    o.weight_decay = 0.1;
    return std::make_unique<AdamW>(groups, o);
  }
  if (kind == "sgd") {
    SgdOptions o;
    o.lr = 0.05;
    o.dampening = 0.2;
    o.weight_decay = 0.1;
    return std::make_unique<SGD>(groups, o);
  }
  LionOptions o;
  o.lr = 0.01;
  o.weight_decay = 0.1;
  return std::make_unique<Lion>(groups, o);
}

}  // namespace

TEST_CASE("optim: AdamW, SGD and LION follow PyTorch's trajectories", "[optim]") {
  const json& doc = golden();
  REQUIRE(doc.at("format_version") == 1);
  REQUIRE(doc.at("cases").size() >= 6);
  for (const json& c : doc.at("cases")) {
    const std::string name = c.at("name");
    const std::string kind = c.at("optimizer");
    const json& o = c.at("options");
    INFO("case " << name);
    std::map<std::string, TF> params;
    for (const auto& [pname, t] : c.at("init").items()) {
      params[pname] = tensor_of(t);
      params[pname].set_requires_grad();
    }
    std::vector<ParamGroup> groups;
    for (const json& g : c.at("groups")) {
      ParamGroup group;
      for (const std::string pname : g.at("params")) group.params.emplace_back(pname, params.at(pname));
      group.lr_mult = g.at("lr_mult");
      group.weight_decay = g.at("weight_decay").get<double>();
      groups.push_back(group);
    }
    std::unique_ptr<Optimizer> opt;
    if (kind == "adamw") {
      AdamWOptions ao;
      ao.beta1 = o.at("beta1");
      ao.beta2 = o.at("beta2");
      ao.eps = o.at("eps");
      opt = std::make_unique<AdamW>(groups, ao);
    } else if (kind == "sgd") {
      SgdOptions so;
      so.momentum = o.at("momentum");
      so.dampening = o.at("dampening");
      so.nesterov = o.at("nesterov");
      opt = std::make_unique<SGD>(groups, so);
    } else {
      REQUIRE(kind == "lion");
      LionOptions lo;
      lo.beta1 = o.at("beta1");
      lo.beta2 = o.at("beta2");
      opt = std::make_unique<Lion>(groups, lo);
    }
    int step = 0;
    for (const json& s : c.at("steps")) {
      INFO("step " << step);
      opt->set_lr(s.at("lr"));
      for (auto& [pname, p] : params) {
        if (s.at("grads").contains(pname)) set_grad(p, tensor_of(s.at("grads").at(pname)));
        else p.zero_grad();
      }
      opt->step();
      for (auto& [pname, p] : params) {
        INFO("parameter " << pname);
        const std::vector<double> want = s.at("params").at(pname).at("values").get<std::vector<double>>();
        const std::vector<float> got = p.to_vector();
        REQUIRE(got.size() == want.size());
        for (size_t i = 0; i < got.size(); ++i) {
          INFO("element " << i << ": " << got[i] << " vs torch " << want[i]);
          CHECK(std::abs(got[i] - want[i]) <= 1e-6 * std::abs(want[i]));
        }
      }
      ++step;
    }
    CHECK(opt->step_count() == step);
  }
}

TEST_CASE("optim: schedules match their closed forms", "[optim]") {
  const double pi = 3.14159265358979323846;
  const Schedule cos0 = warmup_cosine(10, 110), cos1 = warmup_cosine(10, 110, 0.1);
  CHECK(cos0(0) == 0.0);
  CHECK(cos0(5) == Approx(0.5).margin(1e-15));
  CHECK(cos0(10) == Approx(1.0).margin(1e-15));
  CHECK(cos0(35) == Approx((1 + std::cos(pi / 4)) / 2).margin(1e-15));
  CHECK(cos0(60) == Approx(0.5).margin(1e-15));
  CHECK(cos0(85) == Approx((1 + std::cos(3 * pi / 4)) / 2).margin(1e-15));
  CHECK(cos0(110) == Approx(0.0).margin(1e-15));
  CHECK(cos0(1000) == Approx(0.0).margin(1e-15));
  CHECK(cos1(0) == 0.0);
  CHECK(cos1(10) == Approx(1.0).margin(1e-15));
  CHECK(cos1(60) == Approx(0.55).margin(1e-15));
  CHECK(cos1(110) == Approx(0.1).margin(1e-15));
  CHECK(cos1(5000) == Approx(0.1).margin(1e-15));
  CHECK(warmup_cosine(0, 100)(0) == Approx(1.0).margin(1e-15));

  const Schedule lin = linear(10, 110);
  CHECK(lin(0) == 0.0);
  CHECK(lin(4) == Approx(0.4).margin(1e-15));
  CHECK(lin(10) == Approx(1.0).margin(1e-15));
  CHECK(lin(35) == Approx(0.75).margin(1e-15));
  CHECK(lin(100) == Approx(0.1).margin(1e-15));
  CHECK(lin(110) == 0.0);
  CHECK(lin(500) == 0.0);

  const Schedule rs = rsqrt(100);
  CHECK(rs(0) == 0.0);
  CHECK(rs(50) == Approx(0.5).margin(1e-15));
  CHECK(rs(100) == Approx(1.0).margin(1e-15));
  CHECK(rs(400) == Approx(0.5).margin(1e-15));
  CHECK(rs(10000) == Approx(0.1).margin(1e-15));

  CHECK(constant()(0) == 1.0);
  CHECK(constant()(123456) == 1.0);

  CHECK_THROWS_WITH(warmup_cosine(10, 10), Contains("warmup_cosine") && Contains("total"));
  CHECK_THROWS_WITH(warmup_cosine(-1, 10), Contains("warmup must be >= 0"));
  CHECK_THROWS_WITH(warmup_cosine(1, 10, 1.5), Contains("final_fraction"));
  CHECK_THROWS_WITH(linear(5, 3), Contains("linear"));
  CHECK_THROWS_WITH(rsqrt(0), Contains("rsqrt") && Contains("warmup"));
  CHECK_THROWS_WITH(lin(-1), Contains("linear") && Contains("step must be >= 0"));
}

TEST_CASE("optim: a schedule and group multipliers drive the learning rate per step", "[optim]") {
  const TF a = leaf({1.0f}, {1}), b = leaf({1.0f}, {1});
  SgdOptions o;
  o.lr = 2.0;
  o.momentum = 0;
  SGD opt({ParamGroup{{{"a", a}}, 1.0, {}}, ParamGroup{{{"b", b}}, 0.25, {}}}, o);
  opt.set_schedule(linear(2, 4));  // multipliers 0, 0.5, 1, 0.5, 0
  const double mult[] = {0, 0.5, 1, 0.5, 0};
  double want_a = 1, want_b = 1;
  for (int k = 0; k < 5; ++k) {
    CHECK(opt.current_lr() == 2.0 * mult[k]);
    set_grad(a, TF::ones({1}));
    set_grad(b, TF::ones({1}));
    opt.step();
    want_a -= 2.0 * mult[k];
    want_b -= 2.0 * mult[k] * 0.25;
    CHECK(a.item() == Approx(want_a).margin(1e-6));
    CHECK(b.item() == Approx(want_b).margin(1e-6));
  }
  opt.set_schedule({});
  CHECK(opt.current_lr() == 2.0);
  opt.set_schedule([](int64_t) { return -1.0; });
  CHECK_THROWS_WITH(opt.step(), Contains("SGD") && Contains("schedule returned -1"));
}

TEST_CASE("optim: clip_grad_norm scales by max_norm / (norm + 1e-6) and returns the norm", "[optim]") {
  const TF a = leaf({0, 0}, {2}), b = leaf({0}, {1, 1}), none = leaf({0}, {1});
  const std::vector<TF> params = {a, b, none};
  set_grad(a, TF::from_vector({3, 4}));
  set_grad(b, TF::from_vector({12}, {1, 1}));
  CHECK(grad_norm(params) == 13.0);
  CHECK(clip_grad_norm(params, 100.0) == 13.0);  // under the limit: untouched
  CHECK(a.grad().to_vector() == std::vector<float>{3, 4});
  CHECK(clip_grad_norm(params, std::numeric_limits<double>::infinity()) == 13.0);

  CHECK(clip_grad_norm(params, 6.5) == 13.0);
  const float coef = static_cast<float>(6.5 / (13.0 + 1e-6));
  CHECK(a.grad().to_vector() == std::vector<float>{3 * coef, 4 * coef});
  CHECK(b.grad().item() == 12 * coef);
  CHECK(grad_norm(params) == Approx(6.5).epsilon(1e-6));
  CHECK_FALSE(none.grad().defined());

  // The named and optimizer overloads see the same gradients.
  const NamedParams named = {{"a", a}, {"b", b}, {"none", none}};
  CHECK(grad_norm(named) == grad_norm(params));
  SGD opt(std::vector<ParamGroup>{ParamGroup{named, 1.0, {}}});
  CHECK(grad_norm(opt) == grad_norm(params));
  CHECK(clip_grad_norm(opt, 1.0) == Approx(6.5).epsilon(1e-6));
  CHECK(grad_norm(params) == Approx(1.0).epsilon(1e-6));

  // Many elements go through the blocked, parallel sum: still exact here.
  const TF big = leaf(std::vector<float>(300000, 0.0f), {300000});
  set_grad(big, TF::full({300000}, 0.5f));
  CHECK(grad_norm(std::vector<TF>{big}) == std::sqrt(300000 * 0.25));

  // A non-finite norm is reported, not thrown, and the gradients stay as they were.
  set_grad(a, TF::from_vector({std::numeric_limits<float>::quiet_NaN(), 1}));
  set_grad(b, TF::from_vector({2}, {1, 1}));
  CHECK(std::isnan(clip_grad_norm(params, 1.0)));
  CHECK(b.grad().item() == 2.0f);
  set_grad(a, TF::from_vector({std::numeric_limits<float>::infinity(), 1}));
  CHECK(std::isinf(clip_grad_norm(params, 1.0)));
  CHECK(b.grad().item() == 2.0f);
  CHECK(std::isinf(a.grad().to_vector()[0]));

  CHECK_THROWS_WITH(clip_grad_norm(params, 0.0), Contains("clip_grad_norm") && Contains("max_norm"));
  CHECK_THROWS_WITH(clip_grad_norm(params, -1.0), Contains("max_norm"));
  CHECK_THROWS_WITH(clip_grad_norm(params, std::nan("")), Contains("max_norm"));
}

TEST_CASE("optim: split_decay decays weight matrices only, by Hugging Face names", "[optim]") {
  Bag model;
  const std::vector<std::pair<std::string, Shape>> decayed = {
      {"vision_model.embeddings.patch_embedding.weight", {4, 3, 2, 2}},
      {"vision_model.encoder.layers.0.self_attn.q_proj.weight", {4, 4}},
      {"vision_model.encoder.layers.0.mlp.fc1.weight", {8, 4}},
      {"vision_model.head.attention.in_proj_weight", {12, 4}},
      {"vision_model.head.myprobe", {2, 2}},  // "probe" only as a whole name component
      {"text_model.head.weight", {3, 4}},
  };
  const std::vector<std::pair<std::string, Shape>> kept = {
      {"vision_model.embeddings.patch_embedding.bias", {4}},
      {"vision_model.embeddings.position_embedding.weight", {4, 4}},
      {"vision_model.encoder.layers.0.layer_norm1.weight", {4}},
      {"vision_model.encoder.layers.0.layer_norm2.bias", {4}},
      {"vision_model.encoder.layers.0.self_attn.q_proj.bias", {4}},
      {"vision_model.encoder.layers.0.odd_layer_norm.weight", {2, 2}},  // a LayerNorm by name, whatever its rank
      {"vision_model.post_layernorm.weight", {4}},
      {"vision_model.head.probe", {1, 1, 4}},
      {"vision_model.head.attention.in_proj_bias", {12}},
      {"vision_model.head.layernorm.weight", {4}},
      {"text_model.embeddings.token_embedding.weight", {10, 4}},
      {"text_model.embeddings.position_embedding.weight", {5, 4}},
      {"text_model.final_layer_norm.weight", {4}},
      {"text_model.head.bias", {3}},
      {"logit_scale", {1}},
      {"logit_bias", {1}},
  };
  for (const auto& [n, s] : decayed) model.add(n, s);
  for (const auto& [n, s] : kept) model.add(n, s);
  model.add("text_model.frozen.weight", {4, 4}, false);

  const NamedParams named = model.named_parameters();
  const std::vector<ParamGroup> groups = split_decay(named);
  REQUIRE(groups.size() == 2);
  CHECK_FALSE(groups[0].weight_decay.has_value());
  CHECK(groups[1].weight_decay == 0.0);
  std::set<std::string> want_decay, want_kept;
  for (const auto& d : decayed) want_decay.insert(d.first);
  for (const auto& k : kept) want_kept.insert(k.first);
  const std::vector<std::string> got_decay = names_of(groups[0]), got_kept = names_of(groups[1]);
  CHECK(std::set<std::string>(got_decay.begin(), got_decay.end()) == want_decay);
  CHECK(std::set<std::string>(got_kept.begin(), got_kept.end()) == want_kept);
  CHECK(got_decay.size() + got_kept.size() == named.size() - 1);  // the frozen one is left out

  // The rule is a predicate: decay everything of rank >= 1, for instance.
  const auto all = split_decay(named, [](const std::string&, const TF& p) { return p.dim() >= 1; });
  REQUIRE(all.size() == 1);
  CHECK(all[0].params.size() == named.size() - 1);

  // A tensor listed twice (tied weights) is kept once.
  NamedParams tied = named;
  tied.emplace_back("tied.copy", named[0].second);
  CHECK(split_decay(tied)[0].params.size() == decayed.size());

  // AdamW from named parameters uses the rule: zero gradients leave p * (1 - lr * wd) where decayed.
  AdamWOptions o;
  o.lr = 0.1;
  o.weight_decay = 0.5;
  AdamW opt(named, o);
  for (const auto& [n, p] : named) set_grad(p, TF::zeros(p.shape()));
  opt.step();
  for (const auto& [n, p] : named) {
    INFO(n);
    const float want = !p.requires_grad() ? 1.0f : want_decay.count(n) ? static_cast<float>(1 - 0.1 * 0.5) : 1.0f;
    for (float v : p.to_vector()) CHECK(v == want);
  }
}

TEST_CASE("optim: with_lr_mult gives a tower its own learning-rate multiplier", "[optim]") {
  Bag model;
  model.add("vision_model.encoder.fc.weight", {2, 2});
  model.add("vision_model.encoder.fc.bias", {2});
  model.add("text_model.encoder.fc.weight", {2, 2});
  model.add("text_model.encoder.fc.bias", {2});
  model.add("logit_scale", {1});
  const std::vector<ParamGroup> groups = with_lr_mult(split_decay(model.named_parameters()), "vision_model.", 0.1, 0.0);
  REQUIRE(groups.size() == 4);
  CHECK(names_of(groups[0]) == std::vector<std::string>{"text_model.encoder.fc.weight"});
  CHECK(groups[0].lr_mult == 1.0);
  CHECK_FALSE(groups[0].weight_decay.has_value());
  CHECK(names_of(groups[1]) == std::vector<std::string>{"logit_scale", "text_model.encoder.fc.bias"});
  CHECK(groups[1].weight_decay == 0.0);
  CHECK(names_of(groups[2]) == std::vector<std::string>{"vision_model.encoder.fc.weight"});
  CHECK(groups[2].lr_mult == 0.1);
  CHECK(groups[2].weight_decay == 0.0);
  CHECK(names_of(groups[3]) == std::vector<std::string>{"vision_model.encoder.fc.bias"});
  CHECK(groups[3].lr_mult == 0.1);
  // Without a weight decay the moved groups keep theirs.
  const auto keep = with_lr_mult(split_decay(model.named_parameters()), "vision_model.", 0.1);
  CHECK_FALSE(keep[2].weight_decay.has_value());

  // Plain SGD: every parameter moves by lr * lr_mult * grad.
  SgdOptions o;
  o.lr = 1.0;
  o.momentum = 0;
  SGD opt(groups, o);
  for (const auto& [n, p] : model.named_parameters()) set_grad(p, TF::ones(p.shape()));
  opt.step();
  for (const auto& [n, p] : model.named_parameters()) {
    INFO(n);
    const float want = n.rfind("vision_model.", 0) == 0 ? 1.0f - 0.1f : 0.0f;
    for (float v : p.to_vector()) CHECK(v == Approx(want).margin(1e-7));
  }

  CHECK_THROWS_WITH(with_lr_mult(groups, "vision.", 0.1), Contains("with_lr_mult") && Contains("'vision.'"));
  CHECK_THROWS_WITH(with_lr_mult(groups, "text_model.", -1), Contains("lr_mult"));
  CHECK_THROWS_WITH(with_lr_mult(groups, "text_model.", 1, -0.5), Contains("weight_decay"));
}

TEST_CASE("optim: saved and restored state continues bit for bit", "[optim]") {
  for (const std::string kind : {"adamw", "sgd", "lion"}) {
    INFO(kind);
    // Uninterrupted: five steps.
    const NamedParams p5 = make_params();
    const auto opt5 = make_optimizer(kind, p5);
    opt5->set_schedule(warmup_cosine(2, 6, 0.1));
    for (int k = 0; k < 5; ++k) {
      set_step_grads(p5, k);
      opt5->step();
    }
    // Three steps, save the parameters and the state as they would go to a file.
    const NamedParams p3 = make_params();
    const auto opt3 = make_optimizer(kind, p3);
    opt3->set_schedule(warmup_cosine(2, 6, 0.1));
    for (int k = 0; k < 3; ++k) {
      set_step_grads(p3, k);
      opt3->step();
    }
    std::map<std::string, TF> file;
    for (const auto& [key, t] : opt3->state_dict().to_tensors()) file[key] = t.clone();
    CHECK(file.at("step").item() == 3.0f);
    CHECK(file.at("step.layer.bias").item() == 2.0f);  // it had no gradient at step 2
    if (kind == "adamw") {
      CHECK(file.count("exp_avg.layer.weight") == 1);
      CHECK(file.count("exp_avg_sq.other.weight") == 1);
    }
    // A fresh optimizer over fresh parameters takes both and runs two more steps.
    const NamedParams resumed = copy_params(p3);
    const auto opt = make_optimizer(kind, resumed);
    opt->set_schedule(warmup_cosine(2, 6, 0.1));
    opt->load_state_dict(OptimizerState::from_tensors(file));
    CHECK(opt->step_count() == 3);
    for (int k = 3; k < 5; ++k) {
      set_step_grads(resumed, k);
      opt->step();
    }
    for (size_t i = 0; i < p5.size(); ++i) {
      INFO(p5[i].first);
      CHECK(resumed[i].second.to_vector() == p5[i].second.to_vector());
    }
    const OptimizerState s5 = opt5->state_dict(), s = opt->state_dict();
    CHECK(s.step == 5);
    REQUIRE(s.tensors.size() == s5.tensors.size());
    for (const auto& [key, t] : s5.tensors) CHECK(s.tensors.at(key).to_vector() == t.to_vector());
  }
}

TEST_CASE("optim: step updates in place, skips parameters without gradient and allocates nothing", "[optim]") {
  const NamedParams params = make_params();
  AdamW opt(params);
  const float* data = params[0].second.device_ptr();
  set_step_grads(params, 0);
  opt.step();
  CHECK(params[0].second.device_ptr() == data);
  CHECK(params[0].second.is_leaf());
  CHECK(grad_enabled());

  // The second parameter has no gradient: neither it nor its state moves.
  const std::vector<float> before = params[1].second.to_vector();
  const std::vector<float> m_before = opt.state_dict().tensors.at("exp_avg.layer.bias").to_vector();
  set_step_grads(params, 1);
  params[1].second.zero_grad();
  const AllocatorStats a0 = memory_stats();
  opt.step();
  const AllocatorStats a1 = memory_stats();
  CHECK(a1.system_allocations == a0.system_allocations);
  CHECK(a1.cache_hits == a0.cache_hits);
  CHECK(a1.bytes_in_use == a0.bytes_in_use);
  CHECK(params[1].second.to_vector() == before);
  CHECK(opt.state_dict().tensors.at("exp_avg.layer.bias").to_vector() == m_before);
  CHECK(opt.state_dict().tensors.at("step.layer.bias").item() == 1.0f);
  CHECK(opt.state_dict().tensors.at("step.layer.weight").item() == 2.0f);

  opt.zero_grad();
  for (const auto& np : params) CHECK_FALSE(np.second.grad().defined());
}

TEST_CASE("optim: the parallel update of a large buffer equals the serial one", "[optim]") {
  const int64_t n = 200003;
  std::vector<float> p(n), g(n), m(n), v(n);
  for (int64_t i = 0; i < n; ++i) {
    p[i] = static_cast<float>(std::sin(0.01 * i));
    g[i] = static_cast<float>(std::cos(0.013 * i));
    m[i] = 0.1f * g[i];
    v[i] = 0.01f * g[i] * g[i];
  }
  kernels::AdamWArgs a;
  a.lr = 1e-3;
  a.beta1 = 0.9;
  a.beta2 = 0.95;
  a.eps = 1e-8;
  a.weight_decay = 0.1;
  a.bias_correction1 = 0.19;
  a.bias_correction2 = 0.0975;
  std::vector<float> p1 = p, m1 = m, v1 = v, p2 = p, m2 = m, v2 = v;
  const kernels::Kernels<float>& k = kernels::on<float>(Device::cpu());
  k.adamw_update(p1.data(), g.data(), m1.data(), v1.data(), n, a);
  for (int64_t b = 0; b < n; b += 1000)  // small chunks run on one thread
    k.adamw_update(p2.data() + b, g.data() + b, m2.data() + b, v2.data() + b, std::min<int64_t>(1000, n - b), a);
  CHECK(p1 == p2);
  CHECK(m1 == m2);
  CHECK(v1 == v2);
}

TEST_CASE("optim: bad hyperparameters and parameters are errors", "[optim]") {
  const NamedParams params = make_params();
  AdamWOptions ao;
  ao.lr = -1;
  CHECK_THROWS_WITH(AdamW(params, ao), Contains("AdamW") && Contains("lr") && Contains("-1"));
  ao = {};
  ao.beta1 = 1.0;
  CHECK_THROWS_WITH(AdamW(params, ao), Contains("AdamW") && Contains("beta1") && Contains("[0, 1)"));
  ao = {};
  ao.beta2 = -0.1;
  CHECK_THROWS_WITH(AdamW(params, ao), Contains("beta2"));
  ao = {};
  ao.eps = -1e-8;
  CHECK_THROWS_WITH(AdamW(params, ao), Contains("eps"));
  ao = {};
  ao.weight_decay = std::nan("");
  CHECK_THROWS_WITH(AdamW(params, ao), Contains("weight_decay"));

  SgdOptions so;
  so.lr = -0.1;
  CHECK_THROWS_WITH(SGD(params, so), Contains("SGD") && Contains("lr"));
  so = {};
  so.momentum = 1.0;
  CHECK_THROWS_WITH(SGD(params, so), Contains("momentum"));
  so = {};
  so.nesterov = true;
  so.dampening = 0.1;
  CHECK_THROWS_WITH(SGD(params, so), Contains("nesterov"));

  LionOptions lo;
  lo.lr = -1e-4;
  CHECK_THROWS_WITH(Lion(params, lo), Contains("Lion") && Contains("lr"));
  lo = {};
  lo.beta2 = 1.5;
  CHECK_THROWS_WITH(Lion(params, lo), Contains("Lion") && Contains("beta2"));

  AdamW opt(params);
  CHECK_THROWS_WITH(opt.set_lr(-1), Contains("lr"));
  CHECK_THROWS_WITH(opt.set_lr(std::numeric_limits<double>::infinity()), Contains("lr"));

  CHECK_THROWS_WITH(AdamW(NamedParams{}), Contains("no parameters"));
  CHECK_THROWS_WITH(AdamW(std::vector<ParamGroup>{ParamGroup{{params[0], params[0]}, 1.0, {}}}),
                    Contains("appears twice"));
  CHECK_THROWS_WITH(AdamW(std::vector<ParamGroup>{ParamGroup{{params[0], {"alias", params[0].second}}, 1.0, {}}}),
                    Contains("share storage"));
  CHECK_THROWS_WITH(AdamW(std::vector<ParamGroup>{ParamGroup{{params[0]}, -1.0, {}}}), Contains("lr_mult"));
  CHECK_THROWS_WITH(AdamW(std::vector<ParamGroup>{ParamGroup{{params[0]}, 1.0, -0.1}}), Contains("weight_decay"));
  CHECK_THROWS_WITH(AdamW(std::vector<ParamGroup>{ParamGroup{{{"t", params[0].second.detach().t()}}, 1.0, {}}}),
                    Contains("contiguous leaf"));
  CHECK_THROWS_WITH(AdamW(std::vector<ParamGroup>{ParamGroup{{{"u", TF()}}, 1.0, {}}}), Contains("undefined"));

  // A gradient that does not fit its parameter is refused before anything is updated.
  const std::vector<float> w = params[0].second.to_vector();
  set_grad(params[0].second, TF::ones(params[0].second.shape()));
  set_grad(params[1].second, TF::ones({5}));
  CHECK_THROWS_WITH(opt.step(), Contains("AdamW") && Contains("layer.bias") && Contains("[5]"));
  CHECK(params[0].second.to_vector() == w);
  CHECK(opt.step_count() == 0);
}

TEST_CASE("optim: a state that does not fit is an error and changes nothing", "[optim]") {
  const NamedParams params = make_params();
  AdamW opt(params);
  set_step_grads(params, 0);
  opt.step();
  const OptimizerState good = opt.state_dict();
  const auto snapshot = [&opt] {
    std::map<std::string, std::vector<float>> out;
    for (const auto& [k, t] : opt.state_dict().tensors) out[k] = t.to_vector();
    return out;
  };
  const auto before = snapshot();

  OptimizerState s = good;
  s.tensors.erase("exp_avg_sq.layer.weight");
  CHECK_THROWS_WITH(opt.load_state_dict(s), Contains("AdamW.load_state_dict") && Contains("1 missing") &&
                                                Contains("exp_avg_sq.layer.weight"));
  s = good;
  s.tensors.erase("step.other.weight");
  CHECK_THROWS_WITH(opt.load_state_dict(s), Contains("missing") && Contains("step.other.weight"));
  s = good;
  s.tensors["exp_avg.nope"] = TF::zeros({1});
  CHECK_THROWS_WITH(opt.load_state_dict(s), Contains("unexpected") && Contains("exp_avg.nope"));
  s = good;
  s.tensors["exp_avg.layer.weight"] = TF::zeros({4, 3});
  CHECK_THROWS_WITH(opt.load_state_dict(s), Contains("mismatched") && Contains("[4,3]") && Contains("[3,4]"));
  s = good;
  s.tensors["step.layer.weight"] = TF::scalar(1.5f);
  CHECK_THROWS_WITH(opt.load_state_dict(s), Contains("step.layer.weight") && Contains("whole number"));
  s = good;
  s.step = -1;
  CHECK_THROWS_WITH(opt.load_state_dict(s), Contains("step"));
  CHECK(snapshot() == before);
  CHECK(opt.step_count() == 1);

  // Another optimizer's state: SGD keeps a momentum buffer, not AdamW's moments.
  SGD sgd(make_params());
  CHECK_THROWS_WITH(sgd.load_state_dict(good), Contains("SGD.load_state_dict") && Contains("momentum_buffer") &&
                                                   Contains("exp_avg_sq"));

  std::map<std::string, TF> flat = good.to_tensors();
  flat.erase("step");
  CHECK_THROWS_WITH(OptimizerState::from_tensors(flat), Contains("'step'"));
  flat["step"] = TF::scalar(-2.0f);
  CHECK_THROWS_WITH(OptimizerState::from_tensors(flat), Contains("whole number"));
  OptimizerState huge = good;
  huge.step = OptimizerState::kMaxExactStep + 1;
  CHECK_THROWS_WITH(huge.to_tensors(), Contains("float"));

  opt.load_state_dict(good);  // its own state fits
  CHECK(snapshot() == before);
}
