// The suite's entry point: Catch's main, and a listener that sets the run's default device from the environment
// (SIGLITE_TEST_DEVICE, read in far_registration.cpp) before the first test.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>

void set_test_device_from_environment();

namespace {
struct TestDevice : Catch::TestEventListenerBase {
  using TestEventListenerBase::TestEventListenerBase;
  void testRunStarting(const Catch::TestRunInfo& info) override {
    set_test_device_from_environment();
    TestEventListenerBase::testRunStarting(info);
  }
};
}  // namespace

CATCH_REGISTER_LISTENER(TestDevice)
