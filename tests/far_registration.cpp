// Registers the far test device (far_device.hpp) when a program starts: linked into the test build's copies of
// siglite-train, -eval and -embed (siglite-train-far, ...), which then take --device far.
#include "far_device.hpp"

namespace {
const siglite::Device far = siglite::testing::far_device();
}  // namespace
