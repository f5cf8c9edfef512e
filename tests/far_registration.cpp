// Registers the far test device (far_device.hpp) when a program starts: linked into the test programs and into the
// test build's copies of siglite-train, -eval and -embed (siglite-train-far, ...), which then take --device far.
#include <cstdio>
#include <cstdlib>
#include <string>

#include "far_device.hpp"

namespace {
const siglite::Device far = siglite::testing::far_device();
}  // namespace

/// SIGLITE_TEST_DEVICE=far makes the far device the default device of the run (ctest runs the suite so as well as
/// on the CPU): every tensor and layer a test makes without naming a device then lives where the host cannot read
/// it. Called by the test programs' listener (main.cpp) before the first test.
void set_test_device_from_environment() {
  const char* name = std::getenv("SIGLITE_TEST_DEVICE");
  const std::string device = name ? name : "";
  if (device.empty() || device == "cpu") return;
  if (device != "far") {
    std::fprintf(stderr, "SIGLITE_TEST_DEVICE=%s: the suite runs on cpu or far\n", device.c_str());
    std::exit(2);
  }
  siglite::set_default_device(far);
}
