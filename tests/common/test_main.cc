// Shared main for every test binary: the same start-up as the CLI (threads, malloc, seed).
#include <gtest/gtest.h>

#include "tokcom/core/startup.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  tokcom::StartupOptions options;
  options.threads = 2;
  options.log_level = "warn";
  tokcom::startup(options);
  return RUN_ALL_TESTS();
}
