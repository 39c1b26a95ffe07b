# The device check (option TOKCOM_DEVICE_CHECK; scripts/cuda_check.sh drives it): the layers core, model and
# comm and tests/test_device.cpp, nothing else — on a GPU machine whose LibTorch is a CUDA build (pip's
# torch: CMAKE_PREFIX_PATH=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')) and which
# lacks the data, serving and CLI libraries of the full build. The test binary compares every device
# with the CPU on the same weights and inputs (docs/ARCHITECTURE.md "Devices").
tokcom_add_layers("core:;model:core;comm:core")
enable_testing()
find_package(GTest REQUIRED)
add_executable(test_device ${CMAKE_SOURCE_DIR}/tests/test_device.cpp ${CMAKE_SOURCE_DIR}/tests/common/test_main.cc)
target_link_libraries(test_device PRIVATE tokcom GTest::gtest)
if(TOKCOM_PCH)
  target_precompile_headers(test_device REUSE_FROM tokcom_core)
endif()
add_test(NAME test_device COMMAND test_device WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
