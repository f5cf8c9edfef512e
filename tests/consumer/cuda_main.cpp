// Uses the installed package's siglite::cuda target: plain C++ here, the backend compiled by nvcc from the source
// the target adds. The backend must be registered; where a GPU is present, a product on it must be right.
#include <cstdio>
#include <siglite/siglite.hpp>

int main() {
  using namespace siglite;
  if (!backends::available(DeviceType::CUDA)) {
    std::printf("consumer_cuda: siglite::cuda registered no CUDA backend\n");
    return 1;
  }
  const int gpus = backends::device_count(DeviceType::CUDA);
  if (gpus > 0) {
    const auto x = Tensor<float>::from_vector({1, 2, 3, 4}, {2, 2}, Device::cuda());
    const float total = sum(matmul(x, x)).item();  // [[7, 10], [15, 22]]
    if (total != 54.0f) {
      std::printf("consumer_cuda: wrong product on the GPU (%f)\n", total);
      return 1;
    }
  }
  std::printf("consumer_cuda: CUDA backend registered, %d GPU(s)\n", gpus);
  return 0;
}
