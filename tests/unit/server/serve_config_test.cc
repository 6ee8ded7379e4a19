#include <gtest/gtest.h>

#include <filesystem>

#include "ops/gpu_info.h"
#include "server/serve.h"

namespace strata::server {
namespace {

ServeConfig Valid() {
  ServeConfig c;
  c.model_dir = std::filesystem::temp_directory_path().string();
  return c;
}

TEST(ServeConfig, DeviceForm) {
  for (const char* ok : {"cpu", "cuda", "cuda:0", "cuda:7", "cuda:123"}) {
    ServeConfig c = Valid();
    c.device = ok;
    EXPECT_TRUE(ValidateServeConfig(c).ok()) << ok;
  }
  for (const char* bad : {"", "gpu", "CUDA", "cuda:", "cuda:x", "cuda:-1", "cuda:1234", "cpu:0"}) {
    ServeConfig c = Valid();
    c.device = bad;
    Status st = ValidateServeConfig(c);
    EXPECT_EQ(st.code(), StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(st.message().find("--device"), std::string::npos) << st.message();
  }
}

TEST(ServeConfig, DeviceAvailability) {
  EXPECT_TRUE(CheckServeDevice("cpu").ok());
  // No machine has 100 GPUs: always an error that names the flag.
  Status far = CheckServeDevice("cuda:99");
  EXPECT_EQ(far.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(far.message().find("--device"), std::string::npos) << far.message();
  ops::GpuInfo gpus = ops::QueryGpus();
  Status cuda = CheckServeDevice("cuda");
  if (!gpus.cuda_built || gpus.devices.empty()) {
    EXPECT_EQ(cuda.code(), StatusCode::kInvalidArgument);
    EXPECT_NE(cuda.message().find("--device"), std::string::npos) << cuda.message();
    EXPECT_NE(cuda.message().find(gpus.cuda_built ? "no CUDA device" : "built without"),
              std::string::npos)
        << cuda.message();
  } else {
    EXPECT_TRUE(cuda.ok()) << cuda.message();
  }
}

}  // namespace
}  // namespace strata::server
