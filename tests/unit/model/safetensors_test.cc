#include "model/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "model/fp8.h"
#include "model/safetensors_writer.h"

namespace strata::model {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// A file image: 8-byte length, `header` verbatim, then `data_bytes` bytes of 0xab.
std::vector<uint8_t> Image(const std::string& header, size_t data_bytes) {
  std::string bytes(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(n >> (8 * i));
  bytes += header;
  bytes.append(data_bytes, static_cast<char>(0xab));
  return std::vector<uint8_t>(bytes.begin(), bytes.end());
}

Status ParseError(const std::vector<uint8_t>& image) {
  auto h = ParseSafetensors(image, "test.safetensors");
  return h.ok() ? OkStatus() : h.status();
}

std::vector<uint8_t> Bytes(const std::vector<float>& v) {
  std::vector<uint8_t> out(v.size() * 4);
  std::memcpy(out.data(), v.data(), out.size());
  return out;
}

std::vector<uint8_t> Bf16Bytes(const std::vector<float>& v) {
  std::vector<uint8_t> out(v.size() * 2);
  for (size_t i = 0; i < v.size(); ++i) {
    uint16_t b = FloatToBf16(v[i]).bits;
    std::memcpy(out.data() + 2 * i, &b, 2);
  }
  return out;
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("strata_st_" + std::to_string(getpid()) + "_" + std::to_string(counter_++));
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string path() const { return path_.string(); }

 private:
  static inline int counter_ = 0;
  fs::path path_;
};

void WriteFile(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

TEST(SafetensorsTest, SerializeAndParseRoundTrip) {
  std::vector<TensorSpec> specs = {{"b.bf16", TensorDtype::kBF16, {3}},
                                   {"a.f32", TensorDtype::kF32, {2, 2}},
                                   {"empty", TensorDtype::kF32, {0, 4}}};
  std::vector<std::vector<uint8_t>> data = {
      Bf16Bytes({1.0f, -2.0f, 0.5f}), Bytes({1.5f, 2.5f, -3.5f, 4.0f}), {}};
  auto image = SerializeSafetensors(specs, data);
  ASSERT_TRUE(image.ok()) << image.status().ToString();
  auto h = ParseSafetensors(*image, "mem");
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(h->metadata.at("format"), "pt");
  EXPECT_EQ(h->data_offset % 8, 0u);
  ASSERT_EQ(h->tensors.size(), 3u);
  EXPECT_EQ(h->tensors[0].name, "a.f32");  // sorted by name
  EXPECT_EQ(h->tensors[0].shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(reinterpret_cast<uintptr_t>(h->tensors[0].data) % 4, 0u);  // F32 placed first
  std::vector<float> out(4);
  ASSERT_TRUE(ConvertToFloat(h->tensors[0], nullptr, out).ok());
  EXPECT_EQ(out, (std::vector<float>{1.5f, 2.5f, -3.5f, 4.0f}));
  std::vector<float> out_bf16(3);
  ASSERT_TRUE(ConvertToFloat(h->tensors[1], nullptr, out_bf16).ok());
  EXPECT_EQ(out_bf16, (std::vector<float>{1.0f, -2.0f, 0.5f}));
  EXPECT_EQ(h->tensors[2].bytes, 0u);
}

TEST(SafetensorsTest, RejectsBadHeaders) {
  struct Case {
    const char* name;
    std::vector<uint8_t> image;
    StatusCode code;
    const char* message;
  };
  const std::string ok_entry = R"("t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  std::vector<uint8_t> huge_len = Image("{}", 0);
  huge_len[1] = 0x03;  // 770 bytes claimed, 2 present
  std::vector<uint8_t> over_limit = Image("{}", 0);
  const uint64_t limit = kMaxSafetensorsHeaderBytes + 1;
  for (int i = 0; i < 8; ++i) over_limit[i] = static_cast<uint8_t>(limit >> (8 * i));
  const std::vector<Case> cases = {
      {"short", {1, 2, 3}, StatusCode::kDataLoss, "too short"},
      {"truncated_header", huge_len, StatusCode::kDataLoss, "truncated"},
      {"over_limit", over_limit, StatusCode::kInvalidArgument, "exceeds the limit"},
      {"not_json", Image("{not json", 0), StatusCode::kDataLoss, "not valid JSON"},
      {"array", Image("[1,2]", 0), StatusCode::kDataLoss, "not a JSON object"},
      {"truncated_data", Image("{" + ok_entry + "}", 4), StatusCode::kDataLoss,
       "tensor 't': data_offsets [0, 8] exceed the data area of 4 bytes"},
      {"oversized_offset",
       Image(
           R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[18446744073709551608,18446744073709551615]}})",
           8),
       StatusCode::kDataLoss, "tensor 't'"},
      {"begin_after_end", Image(R"({"t":{"dtype":"U8","shape":[0],"data_offsets":[8,4]}})", 8),
       StatusCode::kDataLoss, "begin 8 > end 4"},
      {"overlap",
       Image(
           R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
           12),
       StatusCode::kDataLoss, "tensors 'a' and 'b' overlap"},
      {"unknown_dtype", Image(R"({"t":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}})", 1),
       StatusCode::kInvalidArgument, "tensor 't': unknown dtype 'F4'"},
      {"wrong_dtype_type", Image(R"({"t":{"dtype":7,"shape":[2],"data_offsets":[0,8]}})", 8),
       StatusCode::kDataLoss, "tensor 't': missing dtype"},
      {"size_mismatch", Image(R"({"t":{"dtype":"BF16","shape":[3],"data_offsets":[0,8]}})", 8),
       StatusCode::kDataLoss, "tensor 't': 8 bytes for BF16 shape [3], which needs 6"},
      {"negative_dim", Image(R"({"t":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8),
       StatusCode::kDataLoss, "negative dimension"},
      {"shape_overflow",
       Image(R"({"t":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8),
       StatusCode::kDataLoss, "overflows"},
      {"duplicate",
       Image(
           R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"t":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
           2),
       StatusCode::kDataLoss, "tensor 't' appears twice"},
      {"offsets_arity", Image(R"({"t":{"dtype":"U8","shape":[1],"data_offsets":[0]}})", 1),
       StatusCode::kDataLoss, "data_offsets is not [begin, end]"},
      {"metadata_value", Image(R"({"__metadata__":{"format":1}})", 0), StatusCode::kDataLoss,
       "__metadata__ value 'format'"},
      {"entry_not_object", Image(R"({"t":[1]})", 0), StatusCode::kDataLoss,
       "entry is not an object"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    Status s = ParseError(c.image);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.code(), c.code) << s.ToString();
    EXPECT_THAT(s.message(), HasSubstr("test.safetensors"));
    EXPECT_THAT(s.message(), HasSubstr(c.message));
  }
}

TEST(SafetensorsTest, AcceptsPaddedHeaderAndGaps) {
  // Trailing spaces pad the header; a gap between tensors is tolerated.
  auto image = Image(
      R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"I64","shape":[1],"data_offsets":[8,16]}}    )",
      16);
  auto h = ParseSafetensors(image, "pad");
  ASSERT_TRUE(h.ok()) << h.status().ToString();
  EXPECT_EQ(h->tensors.size(), 2u);
  std::vector<float> out(1);
  EXPECT_EQ(ConvertToFloat(h->tensors[1], nullptr, out).code(), StatusCode::kInvalidArgument);
}

TEST(Fp8Test, DecodesKnownCodes) {
  EXPECT_EQ(Fp8E4M3ToFloat(0x00), 0.0f);
  EXPECT_EQ(Fp8E4M3ToFloat(0x38), 1.0f);
  EXPECT_EQ(Fp8E4M3ToFloat(0x3c), 1.5f);
  EXPECT_EQ(Fp8E4M3ToFloat(0x40), 2.0f);
  EXPECT_EQ(Fp8E4M3ToFloat(0xb8), -1.0f);
  EXPECT_EQ(Fp8E4M3ToFloat(0x7e), 448.0f);
  EXPECT_EQ(Fp8E4M3ToFloat(0x08), std::ldexp(1.0f, -6));
  EXPECT_EQ(Fp8E4M3ToFloat(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(Fp8E4M3ToFloat(0x07), 7 * std::ldexp(1.0f, -9));
  EXPECT_TRUE(std::isnan(Fp8E4M3ToFloat(0x7f)));
  EXPECT_TRUE(std::isnan(Fp8E4M3ToFloat(0xff)));
}

TEST(Fp8Test, EncodesToNearestEvenAndSaturates) {
  for (int v = 0; v < 256; ++v) {
    if ((v & 0x7f) == 0x7f) continue;
    EXPECT_EQ(FloatToFp8E4M3(Fp8E4M3ToFloat(static_cast<uint8_t>(v))), v) << v;
  }
  EXPECT_EQ(FloatToFp8E4M3(1000.0f), 0x7e);
  EXPECT_EQ(FloatToFp8E4M3(-1e30f), 0xfe);
  EXPECT_EQ(FloatToFp8E4M3(INFINITY), 0x7e);
  EXPECT_EQ(FloatToFp8E4M3(NAN), 0x7f);
  EXPECT_EQ(FloatToFp8E4M3(1.0625f), 0x38);  // tie between 1.0 and 1.125 -> even (1.0)
  EXPECT_EQ(FloatToFp8E4M3(1.1875f), 0x3a);  // tie between 1.125 and 1.25 -> even (1.25)
  // Against a brute-force nearest search over every finite code.
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> exponent(-12.0f, 9.0f);
  for (int i = 0; i < 20000; ++i) {
    const float f = std::exp2(exponent(rng)) * (i % 2 ? -1.0f : 1.0f);
    float best = 0;
    float best_err = INFINITY;
    for (int v = 0; v < 256; ++v) {
      const float q = Fp8E4M3ToFloat(static_cast<uint8_t>(v));
      if (std::isnan(q)) continue;
      const float err = std::fabs(q - f);
      if (err < best_err) {
        best_err = err;
        best = q;
      }
    }
    const float got = Fp8E4M3ToFloat(FloatToFp8E4M3(f));
    EXPECT_EQ(std::fabs(got - f), best_err) << f << " -> " << got << ", nearest " << best;
  }
}

TEST(Fp8Test, DequantizesWithBlockScalesByHand) {
  // A 3x3 weight in 2x2 blocks: scale_inv is [[0.5, 2], [4, 0.25]].
  const std::vector<uint8_t> w = {0x38, 0x40, 0x3c,   // 1, 2, 1.5
                                  0xb8, 0x01, 0x7e,   // -1, 2^-9, 448
                                  0x40, 0x38, 0xc0};  // 2, 1, -2
  const std::vector<float> s = {0.5f, 2.0f, 4.0f, 0.25f};
  TensorView weight{"w", TensorDtype::kF8E4M3, {3, 3}, w.data(), w.size()};
  TensorView scale{
      "w_scale_inv", TensorDtype::kF32, {2, 2}, reinterpret_cast<const uint8_t*>(s.data()), 16};
  std::vector<float> out(9);
  ASSERT_TRUE(ConvertToFloat(weight, &scale, out, 2, 2).ok());
  const float tiny = std::ldexp(1.0f, -9);
  EXPECT_EQ(out, (std::vector<float>{0.5f, 1.0f, 3.0f,            //
                                     -0.5f, tiny * 0.5f, 896.0f,  //
                                     8.0f, 4.0f, -0.5f}));
  // Wrong scale shape, missing scale.
  TensorView bad_scale{
      "w_scale_inv", TensorDtype::kF32, {1, 2}, reinterpret_cast<const uint8_t*>(s.data()), 8};
  EXPECT_EQ(ConvertToFloat(weight, &bad_scale, out, 2, 2).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(ConvertToFloat(weight, nullptr, out, 2, 2).code(), StatusCode::kNotFound);
}

TEST(Fp8Test, DequantizesDeepseekBlocksFromAFile) {
  // 200 x 130 weight in 128 x 128 blocks: scale_inv [2, 2], partial edge blocks.
  const int64_t rows = 200, cols = 130;
  std::vector<uint8_t> w(rows * cols);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<uint8_t>(i % 0x7e);
  const std::vector<float> s = {0.5f, 0.25f, 2.0f, 8.0f};
  std::vector<TensorSpec> specs = {{"x.weight", TensorDtype::kF8E4M3, {rows, cols}},
                                   {"x.weight_scale_inv", TensorDtype::kF32, {2, 2}}};
  auto image = SerializeSafetensors(specs, {w, Bytes(s)});
  ASSERT_TRUE(image.ok());
  TempDir dir;
  WriteFile(dir.path() + "/model.safetensors", *image);
  auto model = SafetensorsModel::Open(dir.path());
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  auto f = ReadTensorAsFloat(*model, "x.weight");
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  for (int64_t r : {0, 127, 128, 199}) {
    for (int64_t c : {0, 127, 128, 129}) {
      const float expected = Fp8E4M3ToFloat(w[r * cols + c]) * s[(r / 128) * 2 + c / 128];
      EXPECT_EQ((*f)[r * cols + c], expected) << r << "," << c;
    }
  }
  auto b = ReadTensorAsBf16(*model, "x.weight");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ((*b)[129].bits, FloatToBf16((*f)[129]).bits);
  EXPECT_EQ(ReadTensorAsFloat(*model, "nope").status().code(), StatusCode::kNotFound);
}

TEST(SafetensorsModelTest, OpensShardedCheckpoints) {
  TempDir dir;
  std::vector<TensorSpec> specs;
  for (int i = 0; i < 6; ++i) specs.push_back({"t" + std::to_string(i), TensorDtype::kF32, {4}});
  auto fill = [&](size_t index, std::span<uint8_t> out) {
    for (size_t k = 0; k < 4; ++k) {
      float v = static_cast<float>(index * 10 + k);
      std::memcpy(out.data() + 4 * k, &v, 4);
    }
    return OkStatus();
  };
  SafetensorsWriteOptions options;
  options.max_shard_bytes = 40;  // two tensors per shard
  auto files = WriteSafetensors(dir.path(), specs, fill, options);
  ASSERT_TRUE(files.ok()) << files.status().ToString();
  EXPECT_EQ(files->size(), 4u);
  EXPECT_EQ(files->back(), "model.safetensors.index.json");
  EXPECT_EQ((*files)[0], "model-00001-of-00003.safetensors");
  auto model = SafetensorsModel::Open(dir.path());
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  EXPECT_EQ(model->files().size(), 3u);
  EXPECT_EQ(model->num_tensors(), 6u);
  auto t5 = ReadTensorAsFloat(*model, "t5");
  ASSERT_TRUE(t5.ok());
  EXPECT_EQ(*t5, (std::vector<float>{50, 51, 52, 53}));

  // An index that points a tensor to the wrong shard, or outside the directory.
  std::string index = dir.path() + "/model.safetensors.index.json";
  std::ofstream(index) << R"({"weight_map":{"t0":"model-00002-of-00003.safetensors"}})";
  auto wrong = SafetensorsModel::Open(dir.path());
  ASSERT_FALSE(wrong.ok());
  EXPECT_THAT(wrong.status().message(), HasSubstr("tensor 't0' is not in its shard"));
  std::ofstream(index) << R"({"weight_map":{"t0":"../etc/passwd"}})";
  EXPECT_EQ(SafetensorsModel::Open(dir.path()).status().code(), StatusCode::kInvalidArgument);
  std::ofstream(index) << R"({"weight_map":{"t0":"missing.safetensors"}})";
  EXPECT_EQ(SafetensorsModel::Open(dir.path()).status().code(), StatusCode::kNotFound);
  std::ofstream(index) << "{";
  EXPECT_EQ(SafetensorsModel::Open(dir.path()).status().code(), StatusCode::kDataLoss);
}

TEST(SafetensorsModelTest, ReportsFileAndTensorForCorruptFiles) {
  TempDir dir;
  auto image = SerializeSafetensors({{"w", TensorDtype::kBF16, {16}}}, {std::vector<uint8_t>(32)});
  ASSERT_TRUE(image.ok());
  image->resize(image->size() - 10);  // truncated download
  const std::string path = dir.path() + "/model.safetensors";
  WriteFile(path, *image);
  auto model = SafetensorsModel::Open(path);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), StatusCode::kDataLoss);
  EXPECT_THAT(model.status().message(), HasSubstr(path + ": tensor 'w'"));
  WriteFile(path, {});
  EXPECT_EQ(SafetensorsModel::Open(path).status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(SafetensorsModel::Open(dir.path() + "/none").status().code(), StatusCode::kNotFound);
}

TEST(SafetensorsModelTest, WriterRejectsDuplicateNames) {
  auto image = SerializeSafetensors({{"a", TensorDtype::kU8, {1}}, {"a", TensorDtype::kU8, {1}}},
                                    {{1}, {2}});
  EXPECT_EQ(image.status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace strata::model
