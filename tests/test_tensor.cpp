// Tensor creation, views sharing storage, element access, printing and devices.
#include <catch2/catch.hpp>
#include <siglite/siglite.hpp>
#include <sstream>

using namespace siglite;
using TF = Tensor<float>;
using Catch::Contains;

TEST_CASE("tensor: creation", "[tensor]") {
  const TF z = TF::zeros({2, 3});
  CHECK(z.shape() == Shape{2, 3});
  CHECK(z.strides() == Shape{3, 1});
  CHECK(z.numel() == 6);
  CHECK(z.to_vector() == std::vector<float>(6, 0.0f));
  CHECK(TF::ones({4}).to_vector() == std::vector<float>(4, 1.0f));
  CHECK(TF::full({2}, 2.5f).to_vector() == std::vector<float>{2.5f, 2.5f});
  CHECK(TF::arange(4.0f).to_vector() == std::vector<float>{0, 1, 2, 3});
  CHECK(TF::arange(1.0f, 2.0f, 0.25f).to_vector() == std::vector<float>{1, 1.25f, 1.5f, 1.75f});
  CHECK(TF::arange(3.0f, 1.0f).numel() == 0);
  CHECK(TF::from_vector({1, 2, 3, 4, 5, 6}, {3, 2}).cpu().at({2, 1}) == 6.0f);
  CHECK(TF::scalar(3.0f).item() == 3.0f);
  CHECK(TF::zeros({0, 3}).numel() == 0);
  CHECK(Tensor<int64_t>::from_vector({7, 8}).to_vector() == std::vector<int64_t>{7, 8});
}

TEST_CASE("tensor: seeded random creation is reproducible", "[tensor]") {
  Generator g1(42), g2(42), g3(43);
  const TF a = TF::randn({1000}, g1), b = TF::randn({1000}, g2), c = TF::randn({1000}, g3);
  CHECK(a.to_vector() == b.to_vector());
  CHECK(a.to_vector() != c.to_vector());
  const double m = mean(a).item(), var = mean(pow(a - static_cast<float>(m), 2.0f)).item();
  CHECK(std::abs(m) < 0.1);
  CHECK(std::abs(var - 1.0) < 0.1);
  const TF u = TF::uniform({1000}, g1, 2.0f, 3.0f);
  CHECK(max(u).item() < 3.0f);
  CHECK(-max(-u).item() >= 2.0f);
}

TEST_CASE("tensor: cast converts element types on the tensor's device, eq compares", "[tensor]") {
  const Tensor<int64_t> ids = Tensor<int64_t>::from_vector({0, 3, -2, (int64_t{1} << 53) + 1});
  CHECK(Tensor<int64_t>::arange(2, 5, 1).to_vector() == std::vector<int64_t>{2, 3, 4});
  CHECK(cast<double>(ids).to_vector() == std::vector<double>{0, 3, -2, 9007199254740992.0});  // rounded to nearest
  CHECK(cast<float>(Tensor<double>::from_vector({0.1, -2.5})).to_vector() == std::vector<float>{0.1f, -2.5f});
  const TF x = TF::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  CHECK(cast<double>(x.t()).to_vector() == std::vector<double>{1, 4, 2, 5, 3, 6});  // a strided source
  CHECK(cast<double>(x.t()).device() == x.device());
  CHECK(cast<float>(x).shares_storage(x));
  CHECK(eq(x, TF::scalar(2.0f)).to_vector() == std::vector<float>{0, 1, 0, 0, 0, 0});
  CHECK(eq(x, x.slice(0, 1, 2) - 3.0f).to_vector() == std::vector<float>{1, 1, 1, 0, 0, 0});
  const TF leaf = TF::ones({2}).set_requires_grad();
  CHECK_FALSE(eq(leaf, leaf).requires_grad());
  CHECK_THROWS_WITH(cast<double>(leaf), Contains("cast: the input requires a gradient") && Contains("detach()"));
  CHECK(cast<double>(leaf.detach()).to_vector() == std::vector<double>{1, 1});
  {
    NoGradGuard no_grad;
    CHECK(cast<double>(leaf).to_vector() == std::vector<double>{1, 1});
  }
  CHECK_THROWS_WITH(eq(x, TF::ones({4})), Contains("eq") && Contains("[2,3]") && Contains("[4]"));
}

TEST_CASE("tensor: views share storage", "[tensor]") {
  const TF x = TF::arange(24.0f, Device::cpu()).reshape({2, 3, 4});  // on the host: at() writes through views
  const TF t = x.transpose(0, 2);
  CHECK(t.shape() == Shape{4, 3, 2});
  CHECK(t.shares_storage(x));
  CHECK_FALSE(t.is_contiguous());
  CHECK(t.at({3, 1, 1}) == x.at({1, 1, 3}));
  const TF p = x.permute({1, 2, 0});
  CHECK(p.at({2, 3, 1}) == x.at({1, 2, 3}));
  const TF s = x.slice(2, 1, 4, 2);
  CHECK(s.shape() == Shape{2, 3, 2});
  CHECK(s.shares_storage(x));
  CHECK(s.at({1, 2, 1}) == x.at({1, 2, 3}));
  CHECK(x.slice(1, -1, 100).shape() == Shape{2, 1, 4});
  const TF e = TF::from_vector({1, 2, 3}, {3, 1}, Device::cpu()).expand({2, 3, 4});
  CHECK(e.shape() == Shape{2, 3, 4});
  CHECK(e.strides() == Shape{0, 1, 0});
  CHECK(e.at({1, 2, 3}) == 3.0f);
  x.at({0, 0, 0}) = 100.0f;  // writes through every view
  CHECK(t.at({0, 0, 0}) == 100.0f);
  const TF c = t.contiguous();
  CHECK(c.is_contiguous());
  CHECK_FALSE(c.shares_storage(x));
  CHECK(c.to_vector() == t.to_vector());
  CHECK(x.contiguous().shares_storage(x));
  CHECK(x.reshape({6, -1}).shares_storage(x));
  CHECK_FALSE(t.reshape({24}).shares_storage(x));  // a non-contiguous view is copied
  CHECK(x.unsqueeze(0).shape() == Shape{1, 2, 3, 4});
  CHECK(x.unsqueeze(-1).shape() == Shape{2, 3, 4, 1});
  CHECK(x.unsqueeze(0).squeeze(0).shape() == x.shape());
  CHECK(x.t().shape() == Shape{2, 4, 3});
  const TF cl = x.clone();
  cl.at({0, 0, 0}) = -1.0f;
  CHECK(x.at({0, 0, 0}) == 100.0f);
}

TEST_CASE("tensor: printing, item and devices", "[tensor]") {
  std::ostringstream s;
  s << TF::from_vector({1, 2, 3, 4}, {2, 2});
  CHECK(s.str().find("Tensor[2,2] " + default_device().str()) == 0);
  CHECK(s.str().find("4") != std::string::npos);
  std::ostringstream big;
  big << TF::zeros({100});
  CHECK(big.str().find("(100 elements)") != std::string::npos);
  CHECK(TF::zeros({1, 1}).item() == 0.0f);
  const TF x = TF::ones({2});
  CHECK(x.device() == default_device());
  CHECK(x.to(x.device()).shares_storage(x));
  CHECK(x.cpu().device() == Device::cpu());
  CHECK(Device::cuda(1).str() == "cuda:1");
}
