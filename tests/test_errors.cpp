// Invalid calls outside the ops (whose error cases are rows of the op table, test_ops.cpp) throw siglite::Error
// naming what was called and the shapes or values involved.
#include <catch2/catch.hpp>
#include <siglite/siglite.hpp>

using namespace siglite;
using TF = Tensor<float>;
using Catch::Contains;

TEST_CASE("errors: element access and factories", "[errors]") {
  const TF x = TF::zeros({2, 3});
  CHECK_THROWS_WITH(x.cpu().at({0, 3}), Contains("at") && Contains("[2,3]"));
  CHECK_THROWS_WITH(x.cpu().at({0}), Contains("at"));
  CHECK_THROWS_WITH(x.size(2), Contains("size"));
  CHECK_THROWS_WITH(x.item(), Contains("item") && Contains("[2,3]"));
  CHECK_THROWS_WITH(TF::from_vector({1, 2, 3}, {2, 2}), Contains("from_vector") && Contains("[2,2]"));
  CHECK_THROWS_WITH(TF::empty({2, -1}), Contains("negative"));
}

TEST_CASE("errors: dtype and device mismatches", "[errors]") {
  // Tensors of different dtypes are different C++ types: mixing them does not compile. Integer
  // tensors cannot take gradients.
  CHECK_THROWS_WITH(Tensor<int64_t>::zeros({2}).set_requires_grad(), Contains("floating-point"));
  // Devices: only the CPU exists in this build; asking for another is an error, not a crash.
  CHECK_THROWS_WITH(TF::zeros({2}).to(Device::cuda(0)), Contains("cuda:0 is not available"));
  CHECK_THROWS_WITH(TF::zeros({2}, Device::cuda(0)), Contains("cuda:0"));
}

TEST_CASE("errors: backward misuse", "[errors]") {
  const TF x = TF::ones({3});
  CHECK_THROWS_WITH(sum(x).backward(), Contains("backward") && Contains("does not require grad"));
  const TF w = TF::ones({3}).set_requires_grad();
  TF y = w * 2.0f;
  CHECK_THROWS_WITH(y.backward(), Contains("backward") && Contains("[3]") && Contains("not a scalar"));
  CHECK_THROWS_WITH(y.backward(TF::ones({2})), Contains("backward") && Contains("[2]") && Contains("[3]"));
  CHECK_THROWS_WITH(y.set_requires_grad(false), Contains("leaf"));
  CHECK_THROWS_WITH(TF().shape(), Contains("undefined"));
}
