// safetensors I/O: round trips, byte reproducibility, strict rejection of malformed files,
// an independently written fixture, module state dicts, and `tokcom weights info`.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/helpers.h"
#include "tokcom/core/atomic_file.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/safetensors.h"
#include "tokcom/core/state_dict.h"

using namespace tokcom;
using tokcom::test::error_of;

namespace {

std::string u64_le(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return s;
}
// A file from a header text and a data buffer (header length taken from the text).
std::string file_of(const std::string& header, const std::string& buffer = "") {
  return u64_le(header.size()) + header + buffer;
}

// Random values spanning the dtype (ints: the full range; floats: normal; bool: 0/1).
torch::Tensor random_tensor(torch::ScalarType type, const std::vector<int64_t>& shape) {
  switch (type) {
    case torch::kBool:
      return torch::randint(0, 2, shape).to(torch::kBool);
    case torch::kByte:
      return torch::randint(0, 256, shape).to(type);
    case torch::kChar:
      return torch::randint(-128, 128, shape).to(type);
    case torch::kShort:
      return torch::randint(-32768, 32768, shape).to(type);
    case torch::kInt:
      return torch::randint(INT32_MIN, INT32_MAX, shape, torch::kLong).to(type);
    case torch::kLong:
      return torch::randint(INT64_MIN, INT64_MAX, shape, torch::kLong);
    default:
      return (torch::randn(shape, torch::kDouble) * 100).to(type);
  }
}

void expect_same(const torch::Tensor& a, const torch::Tensor& b, const std::string& name) {
  ASSERT_TRUE(a.defined() && b.defined()) << name;
  EXPECT_EQ(a.scalar_type(), b.scalar_type()) << name;
  EXPECT_EQ(a.sizes().vec(), b.sizes().vec()) << name;
  EXPECT_TRUE(torch::equal(a, b)) << name;
}

}  // namespace

// --- round trips -----------------------------------------------------------------------------

class SafetensorsDtype
    : public ::testing::TestWithParam<std::pair<const char*, torch::ScalarType>> {};

TEST_P(SafetensorsDtype, RoundTripIsExact) {
  const auto [name, type] = GetParam();
  torch::manual_seed(3);
  TensorMap tensors{{"x", random_tensor(type, {3, 5, 7})}, {"y", random_tensor(type, {1})}};
  const std::string bytes = serialize_safetensors(tensors);
  Safetensors back = parse_safetensors(bytes, "mem");
  ASSERT_EQ(back.tensors.size(), 2u);
  for (const auto& [k, v] : tensors) expect_same(back.tensors.at(k), v, k);
  EXPECT_EQ(safetensors_dtype_name(type), name);
  // The header spells the dtype with the format's name.
  EXPECT_NE(bytes.find(std::string("\"dtype\":\"") + name + "\""), std::string::npos);
  // Through a file as well.
  const std::string path = test::temp_dir("dtype") + "/w.safetensors";
  write_safetensors(path, tensors);
  EXPECT_EQ(read_file(path), bytes);
  for (const auto& [k, v] : read_safetensors(path).tensors) expect_same(v, tensors.at(k), k);
}

INSTANTIATE_TEST_SUITE_P(AllDtypes,
                         SafetensorsDtype,
                         ::testing::Values(std::make_pair("F64", torch::kDouble),
                                           std::make_pair("F32", torch::kFloat),
                                           std::make_pair("F16", torch::kHalf),
                                           std::make_pair("BF16", torch::kBFloat16),
                                           std::make_pair("I64", torch::kLong),
                                           std::make_pair("I32", torch::kInt),
                                           std::make_pair("I16", torch::kShort),
                                           std::make_pair("I8", torch::kChar),
                                           std::make_pair("U8", torch::kByte),
                                           std::make_pair("BOOL", torch::kBool)),
                         [](const auto& info) { return std::string(info.param.first); });

TEST(Safetensors, EmptyAndScalarTensorsRoundTrip) {
  TensorMap tensors{{"empty1", torch::empty({0})},
                    {"empty2", torch::empty({2, 0}, torch::kLong)},
                    {"scalar", torch::tensor(2.5)},
                    {"scalar_int", torch::tensor(int64_t{-4})},
                    {"z", torch::arange(3, torch::kFloat)}};
  Safetensors back = parse_safetensors(serialize_safetensors(tensors), "mem");
  ASSERT_EQ(back.tensors.size(), tensors.size());
  for (const auto& [k, v] : tensors) expect_same(back.tensors.at(k), v, k);
  EXPECT_EQ(back.tensors.at("scalar").dim(), 0);
  EXPECT_EQ(back.tensors.at("empty2").sizes().vec(), (std::vector<int64_t>{2, 0}));
  // No tensors at all is a valid file too.
  EXPECT_TRUE(parse_safetensors(serialize_safetensors({}), "mem").tensors.empty());
}

TEST(Safetensors, MetadataKept) {
  const std::map<std::string, std::string> meta{{"format", "pt"}, {"note", "ünïcode \"quoted\""}};
  Safetensors back =
      parse_safetensors(serialize_safetensors({{"a", torch::ones({2})}}, meta), "mem");
  EXPECT_EQ(back.metadata, meta);
}

TEST(Safetensors, TensorsOwnTheirMemoryAndAreContiguousCpu) {
  torch::Tensor t = torch::arange(12, torch::kFloat).view({3, 4}).t();  // non-contiguous input
  std::string bytes = serialize_safetensors({{"t", t}});
  Safetensors back = parse_safetensors(bytes, "mem");
  bytes.assign(bytes.size(), '\x7f');  // the parsed tensor must not alias the buffer
  expect_same(back.tensors.at("t"), t, "t");
  EXPECT_TRUE(back.tensors.at("t").is_contiguous());
  EXPECT_TRUE(back.tensors.at("t").device().is_cpu());
}

TEST(Safetensors, SerialisationIsByteReproducibleAndLaidOutAsSpecified) {
  torch::manual_seed(1);
  TensorMap a{
      {"zeta", torch::randn({4})}, {"alpha", torch::randn({2, 3})}, {"mid", torch::ones({0})}};
  TensorMap b{{"mid", a.at("mid").clone()},
              {"alpha", a.at("alpha").clone()},
              {"zeta", a.at("zeta").clone()}};
  const std::map<std::string, std::string> meta{{"k", "v"}};
  const std::string bytes = serialize_safetensors(a, meta);
  EXPECT_EQ(bytes, serialize_safetensors(b, meta));
  // Header: length a multiple of 8 (space padded), names sorted, offsets contiguous from 0.
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i)
    n |= static_cast<uint64_t>(static_cast<unsigned char>(bytes[i])) << (8 * i);
  EXPECT_EQ(n % 8, 0u);
  const std::string header = bytes.substr(8, n);
  EXPECT_LT(header.find("\"alpha\""), header.find("\"mid\""));
  EXPECT_LT(header.find("\"mid\""), header.find("\"zeta\""));
  const auto j = nlohmann::json::parse(header);
  EXPECT_EQ(j["alpha"]["data_offsets"], nlohmann::json({0, 24}));
  EXPECT_EQ(j["mid"]["data_offsets"], nlohmann::json({24, 24}));
  EXPECT_EQ(j["zeta"]["data_offsets"], nlohmann::json({24, 40}));
  EXPECT_EQ(bytes.size(), 8 + n + 40);
}

TEST(Safetensors, WriterRejectsWhatTheFormatCannotHold) {
  EXPECT_NE(error_of([] {
              serialize_safetensors({{"c", torch::zeros({2}, torch::kComplexFloat)}});
            }).find("tensor 'c' has dtype ComplexFloat"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              serialize_safetensors({{"__metadata__", torch::zeros({2})}});
            }).find("__metadata__"),
            std::string::npos);
  EXPECT_NE(error_of([] {
              serialize_safetensors({{"u", torch::Tensor()}});
            }).find("'u' is undefined"),
            std::string::npos);
}

// --- malformed files ---------------------------------------------------------------------------

struct BadFile {
  std::string label, bytes, expected;
};

void PrintTo(const BadFile& c, std::ostream* os) { *os << c.label; }

class SafetensorsMalformed : public ::testing::TestWithParam<BadFile> {};

TEST_P(SafetensorsMalformed, RejectedWithFormatErrorNamingFileAndFault) {
  const BadFile& c = GetParam();
  const std::string origin = c.label + ".safetensors";
  try {
    parse_safetensors(c.bytes, origin);
    FAIL() << c.label << ": accepted";
  } catch (const FormatError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("FormatError: " + origin + ": "), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.expected), std::string::npos) << msg;
  }
}

namespace {
const std::string kF32x1 = R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})";
std::vector<BadFile> bad_files() {
  const std::string four(4, '\0'), eight(8, '\0');
  return {
      {"empty_file", "", "file is 0 bytes, shorter than the 8-byte header length"},
      {"seven_bytes", std::string(7, '\0'), "file is 7 bytes"},
      {"byte_order_mark", file_of("\xEF\xBB\xBF" + kF32x1, four), "header starts with a UTF-8 byte-order mark"},
      {"lying_length_2_62", u64_le(uint64_t{1} << 62) + "{}",
       "header length 4611686018427387904 exceeds"},
      {"length_beyond_file", u64_le(100) + "{}",
       "header length 100 is larger than the file (2 bytes"},
      {"not_json", file_of("{\"a\":"), "header is not valid JSON"},
      {"bad_utf8", file_of("{\"\xff\":1}"), "header is not valid JSON"},
      {"not_object", file_of("[1, 2]"), "header is a JSON array, expected an object"},
      {"duplicate_name",
       file_of(
           R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
           eight),
       "duplicate key 'a'"},
      {"duplicate_field",
       file_of(R"({"a":{"dtype":"F32","dtype":"I32","shape":[1],"data_offsets":[0,4]}})", four),
       "duplicate key 'dtype'"},
      {"entry_not_object", file_of(R"({"a":[1]})"), "tensor 'a' is array, expected an object"},
      {"missing_dtype", file_of(R"({"a":{"shape":[1],"data_offsets":[0,4]}})", four),
       "tensor 'a' has no \"dtype\""},
      {"missing_shape", file_of(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", four),
       "tensor 'a' has no \"shape\""},
      {"missing_offsets", file_of(R"({"a":{"dtype":"F32","shape":[1]}})", four),
       "has no \"data_offsets\""},
      {"unknown_dtype", file_of(R"({"a":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}})", "x"),
       "tensor 'a' has unknown dtype \"F8\""},
      {"dtype_not_string", file_of(R"({"a":{"dtype":4,"shape":[1],"data_offsets":[0,4]}})", four),
       "expected a string"},
      {"shape_not_list", file_of(R"({"a":{"dtype":"F32","shape":3,"data_offsets":[0,4]}})", four),
       "has shape 3, expected a list"},
      {"negative_dim", file_of(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", four),
       "shape entry is -1, expected a non-negative integer"},
      {"fractional_dim",
       file_of(R"({"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", four),
       "shape entry is 1.5"},
      {"numel_overflow",
       file_of(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4]}})",
               four),
       "element count overflows"},
      {"overflow_beside_zero",
       file_of(
           R"({"a":{"dtype":"F32","shape":[0,4294967296,4294967296,16],"data_offsets":[0,0]}})"),
       "element count overflows"},
      {"bytes_overflow",
       file_of(R"({"a":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,4]}})", four),
       "byte size overflows"},
      {"huge_shape_tiny_data",
       file_of(R"({"a":{"dtype":"F32","shape":[1000000000000],"data_offsets":[0,4]}})", four),
       "F32 [1000000000000] = 4000000000000 bytes but data_offsets [0, 4] hold 4 bytes"},
      {"offsets_one_int", file_of(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0]}})", four),
       "expected [begin, end]"},
      {"offsets_not_ints",
       file_of(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":["0","4"]}})", four),
       "data_offsets begin is \"0\""},
      {"begin_after_end",
       file_of(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}})", four),
       "data_offsets [4, 0] with begin > end"},
      {"end_beyond_buffer",
       file_of(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", four),
       "tensor 'a' data_offsets end 8 is beyond the data buffer (4 bytes)"},
      {"overlap",
       file_of(
           R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"I32","shape":[1],"data_offsets":[0,4]}})",
           four),
       "overlaps tensor"},
      {"gap", file_of(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", eight),
       "gap of 4 bytes in the data buffer before tensor 'a'"},
      {"trailing_bytes", file_of(kF32x1, eight),
       "data buffer has 8 bytes but the tensors cover only 4"},
      {"truncated_buffer", file_of(kF32x1, std::string(2, '\0')),
       "beyond the data buffer (2 bytes)"},
      {"metadata_not_object", file_of(R"({"__metadata__":[1]})"),
       "__metadata__ is a array, expected an object"},
      {"metadata_value_not_string", file_of(R"({"__metadata__":{"epoch":3}})"),
       "__metadata__ value of 'epoch' is 3, expected a string"},
  };
}
}  // namespace

INSTANTIATE_TEST_SUITE_P(Table,
                         SafetensorsMalformed,
                         ::testing::ValuesIn(bad_files()),
                         [](const auto& info) { return info.param.label; });

// What the reference reader (huggingface/safetensors) accepts, read here too: a null __metadata__
// (an optional field), a header padded with spaces to 8 bytes (the writers' alignment), entries in
// any order, an empty file of tensors, and a BOOL byte other than 0/1 (read as true, as numpy and
// torch show it).
TEST(Safetensors, ReadsWhatTheReferenceReads) {
  const std::string two_f32 = std::string(8, '\0');
  Safetensors st = parse_safetensors(file_of(R"({"__metadata__":null,"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                                             std::string(4, '\0')),
                                     "null_metadata");
  EXPECT_TRUE(st.metadata.empty());
  EXPECT_EQ(st.tensors.size(), 1u);
  st = parse_safetensors(file_of(std::string(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})") + "       ",
                                 std::string(4, '\0')),
                         "padded");
  EXPECT_EQ(st.tensors.size(), 1u);
  st = parse_safetensors(file_of(R"({"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},)"
                                 R"("a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})",
                                 two_f32),
                         "out_of_order");
  EXPECT_EQ(st.tensors.size(), 2u);
  EXPECT_TRUE(parse_safetensors(file_of("{}"), "empty").tensors.empty());
  st = parse_safetensors(file_of(R"({"m":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}})", std::string("\1\2\0", 3)),
                         "bool_bytes");
  expect_same(st.tensors.at("m"), torch::tensor({true, true, false}), "m");
  EXPECT_EQ(st.tensors.at("m").to(torch::kUInt8).sum().item<int64_t>(), 2);  // stored as 1, not 2
}

TEST(Safetensors, TruncatedFileOnDiskNamesThePath) {
  const std::string dir = test::temp_dir("trunc");
  const std::string path = dir + "/w.safetensors";
  const std::string bytes = serialize_safetensors({{"w", torch::ones({16})}});
  write_file_atomic(path, bytes.substr(0, bytes.size() - 3));
  const std::string msg = error_of([&] { read_safetensors(path); });
  EXPECT_NE(msg.find("FormatError: " + path + ": "), std::string::npos) << msg;
  EXPECT_NE(msg.find("beyond the data buffer"), std::string::npos) << msg;
  EXPECT_NE(
      error_of([&] { read_safetensors(dir + "/absent.safetensors"); }).find("absent.safetensors"),
      std::string::npos);
}

TEST(Safetensors, HostileHeadersGiveShortErrorsNotCrashes) {
  // 200k nested arrays: the JSON parser and destructor must not recurse the stack away.
  const std::string deep = "{\"a\":" + std::string(200000, '[') + std::string(200000, ']') + "}";
  const std::string msg = error_of([&] { parse_safetensors(file_of(deep), "deep"); });
  EXPECT_NE(msg.find("header nests deeper than 128 levels"), std::string::npos) << msg.substr(0, 200);
  // The same inside __metadata__ used to crash while its value was quoted in the error.
  const std::string deep_meta =
      "{\"__metadata__\":{\"k\":" + std::string(100000, '[') + std::string(100000, ']') + "}}";
  const std::string msg_meta = error_of([&] { parse_safetensors(file_of(deep_meta), "deep_meta"); });
  EXPECT_NE(msg_meta.find("header nests deeper than 128 levels"), std::string::npos) << msg_meta.substr(0, 200);
  // 128 levels are still JSON the parser reads (then refused for what it is, not for its depth).
  const std::string ok_depth = "{\"a\":" + std::string(127, '[') + std::string(127, ']') + "}";
  EXPECT_NE(error_of([&] { parse_safetensors(file_of(ok_depth), "ok_depth"); }).find("tensor 'a' is array"),
            std::string::npos);
  // A megabyte-long shape is quoted in brief.
  std::string shape = "[-1";
  for (int i = 0; i < 200000; ++i) shape += ",1";
  const std::string big = R"({"a":{"dtype":"F32","shape":)" + shape + R"(],"data_offsets":[0,4]}})";
  const std::string msg2 =
      error_of([&] { parse_safetensors(file_of(big, std::string(4, '\0')), "big"); });
  EXPECT_NE(msg2.find("shape entry is -1"), std::string::npos) << msg2.substr(0, 200);
  std::string shape2 = "[1";
  for (int i = 0; i < 200000; ++i) shape2 += ",1";
  const std::string big2 =
      R"({"a":{"dtype":"F32","shape":)" + shape2 + R"(],"data_offsets":[0,8]}})";
  const std::string msg3 =
      error_of([&] { parse_safetensors(file_of(big2, std::string(8, '\0')), "big2"); });
  EXPECT_NE(msg3.find("hold 8 bytes"), std::string::npos) << msg3.substr(0, 200);
  EXPECT_LT(msg3.size(), 300u);
}

TEST(Safetensors, EveryTruncationOfAValidFileIsRejected) {
  const std::string bytes = serialize_safetensors(
      {{"a", torch::ones({3})}, {"b", torch::zeros({2}, torch::kLong)}}, {{"m", "v"}});
  for (size_t n = 0; n < bytes.size(); ++n)
    EXPECT_THROW(parse_safetensors(bytes.substr(0, n), "cut"), FormatError)
        << "prefix of " << n << " bytes";
}

// --- independent writer (scripts/make_safetensors_fixture.py) ------------------------------------

TEST(Safetensors, ReadsFixtureFromIndependentWriterExactly) {
  Safetensors f =
      read_safetensors(std::string(TOKCOM_TEST_DATA) + "/safetensors_fixture.safetensors");
  ASSERT_EQ(f.tensors.size(), 12u);
  const std::map<std::string, std::string> meta{{"format", "pt"},
                                                {"source", "make_safetensors_fixture.py"}};
  EXPECT_EQ(f.metadata, meta);
  auto& t = f.tensors;
  expect_same(t.at("a_f32"),
              torch::tensor({-1.5f, 0.0f, 0.25f, 2.0f, 1024.5f, -3.75f}).view({2, 3}), "a_f32");
  expect_same(t.at("b_f64"), torch::tensor({1.0 / 3.0, M_PI, -1e300}, torch::kDouble), "b_f64");
  expect_same(t.at("c_f16"), torch::tensor({0.5, -2.0, 65504.0, 1.0 / 1024.0}).to(torch::kHalf),
              "c_f16");
  expect_same(t.at("d_bf16"),
              torch::tensor({1.0f, -0.5f, 3.0f, 256.0f}).view({2, 2}).to(torch::kBFloat16),
              "d_bf16");
  expect_same(t.at("e_i64"), torch::tensor({INT64_MIN, int64_t{0}, INT64_MAX}, torch::kLong),
              "e_i64");
  expect_same(t.at("f_i32"), torch::tensor({-7, 123456789}, torch::kInt), "f_i32");
  expect_same(t.at("g_i16"), torch::tensor({-32768, 32767}).to(torch::kShort), "g_i16");
  expect_same(t.at("h_i8"), torch::tensor({-128, 0, 127}).to(torch::kChar), "h_i8");
  expect_same(t.at("i_u8"), torch::tensor({0, 1, 254, 255}).to(torch::kByte), "i_u8");
  expect_same(t.at("j_bool"), torch::tensor({true, false, true}), "j_bool");
  expect_same(t.at("k_scalar"), torch::tensor(42.0f), "k_scalar");
  expect_same(t.at("l_empty"), torch::empty({2, 0}), "l_empty");
  // Our writer reproduces the values (its byte layout differs by design: sorted buffer).
  Safetensors again = parse_safetensors(serialize_safetensors(f.tensors, f.metadata), "again");
  for (const auto& [k, v] : f.tensors) expect_same(again.tensors.at(k), v, k);
}

// The same independent reader reads what our writer wrote (skipped without /usr/bin/python3 +
// numpy).
TEST(Safetensors, IndependentReaderReadsOurFileExactly) {
  if (std::system("/usr/bin/python3 -c 'import numpy' > /dev/null 2>&1") != 0)
    TOKCOM_SKIP_MISSING("/usr/bin/python3 with numpy not available");
  torch::manual_seed(9);
  TensorMap tensors;
  for (const auto type :
       {torch::kDouble, torch::kFloat, torch::kHalf, torch::kBFloat16, torch::kLong, torch::kInt,
        torch::kShort, torch::kChar, torch::kByte, torch::kBool})
    tensors["t_" + safetensors_dtype_name(type)] = random_tensor(type, {2, 3});
  tensors["scalar"] = torch::tensor(-0.75);
  tensors["empty"] = torch::empty({0, 3}, torch::kInt);
  const std::string path = test::temp_dir("py") + "/ours.safetensors";
  write_safetensors(path, tensors, {{"who", "tokcom"}});
  FILE* pipe = popen(("/usr/bin/python3 " + std::string(TOKCOM_SOURCE_DIR) +
                      "/scripts/make_safetensors_fixture.py --check " + path)
                         .c_str(),
                     "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buf[4096];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), pipe)) > 0;) out.append(buf, n);
  ASSERT_EQ(pclose(pipe), 0) << out;
  const auto got = nlohmann::json::parse(out);
  EXPECT_EQ(got["metadata"], nlohmann::json({{"who", "tokcom"}}));
  ASSERT_EQ(got["tensors"].size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    const auto& g = got["tensors"][name];
    EXPECT_EQ(g["dtype"], safetensors_dtype_name(t.scalar_type())) << name;
    EXPECT_EQ(g["shape"].get<std::vector<int64_t>>(), t.sizes().vec()) << name;
    const torch::Tensor flat = t.flatten();
    ASSERT_EQ(g["values"].size(), static_cast<size_t>(flat.numel())) << name;
    for (int64_t i = 0; i < flat.numel(); ++i) {
      if (t.is_floating_point())
        EXPECT_EQ(g["values"][i].get<double>(), flat[i].item<double>()) << name << "[" << i << "]";
      else if (t.scalar_type() == torch::kBool)
        EXPECT_EQ(g["values"][i].get<bool>(), flat[i].item<bool>()) << name << "[" << i << "]";
      else
        EXPECT_EQ(g["values"][i].get<int64_t>(), flat[i].item<int64_t>())
            << name << "[" << i << "]";
    }
  }
}

// --- module state dicts ------------------------------------------------------------------------

namespace {
struct TinyNetImpl : torch::nn::Module {
  TinyNetImpl() {
    blocks = register_module(
        "blocks", torch::nn::ModuleList(torch::nn::Linear(4, 4), torch::nn::Linear(4, 4)));
    norm = register_module("norm", torch::nn::BatchNorm1d(4));
    head = register_module("head", torch::nn::Linear(torch::nn::LinearOptions(4, 2).bias(false)));
    cls_token = register_parameter("cls_token", torch::randn({1, 1, 4}));
  }
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::BatchNorm1d norm{nullptr};
  torch::nn::Linear head{nullptr};
  torch::Tensor cls_token;
};
TORCH_MODULE(TinyNet);

TinyNet trained_net() {
  TinyNet net;
  torch::NoGradGuard g;
  for (auto& [k, v] : named_tensors(*net))  // floats positive: running_var must stay valid
    v.copy_(v.is_floating_point() ? torch::rand(v.sizes()) + 0.5
                                  : random_tensor(v.scalar_type(), v.sizes().vec()));
  return net;
}
}  // namespace

TEST(StateDict, NamesAreParametersAndBuffersWithDottedKeys) {
  TinyNet net;
  std::vector<std::string> keys;
  for (const auto& [k, v] : named_tensors(*net)) keys.push_back(k);
  const std::vector<std::string> expected{
      "blocks.0.bias",     "blocks.0.weight",  "blocks.1.bias", "blocks.1.weight",
      "cls_token",         "head.weight",      "norm.bias",     "norm.num_batches_tracked",
      "norm.running_mean", "norm.running_var", "norm.weight"};
  EXPECT_EQ(keys, expected);  // head has no bias: undefined tensors are skipped
}

TEST(StateDict, SaveThenLoadIntoFreshModuleGivesIdenticalTensors) {
  torch::manual_seed(5);
  TinyNet net = trained_net();
  const std::string path = test::temp_dir("sd") + "/net.safetensors";
  save_module(path, *net, {{"arch", "tiny"}});
  EXPECT_EQ(read_safetensors(path).metadata.at("arch"), "tiny");
  TinyNet fresh;
  LoadReport report = load_module(path, *fresh);
  EXPECT_TRUE(report.missing.empty() && report.unexpected.empty());
  const TensorMap a = named_tensors(*net), b = named_tensors(*fresh);
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [k, v] : a) expect_same(b.at(k), v, k);
  EXPECT_TRUE(fresh->cls_token.requires_grad());  // still a trainable parameter
  // The loaded module computes what the saved one does.
  fresh->eval();
  net->eval();
  const torch::Tensor x = torch::randn({3, 4});
  EXPECT_TRUE(torch::equal(fresh->norm(fresh->blocks[0]->as<torch::nn::Linear>()->forward(x)),
                           net->norm(net->blocks[0]->as<torch::nn::Linear>()->forward(x))));
}

TEST(StateDict, MissingTensorNamedAndModuleUntouched) {
  torch::manual_seed(6);
  TensorMap tensors = named_tensors(*trained_net());
  tensors.erase("blocks.1.weight");
  tensors.erase("norm.running_var");
  TinyNet fresh;
  const torch::Tensor before = fresh->cls_token.clone();
  const std::string msg = error_of([&] { load_tensors(*fresh, tensors, "ckpt.safetensors"); });
  EXPECT_NE(
      msg.find("FormatError: ckpt.safetensors: missing tensor 'blocks.1.weight' (and 1 other)"),
      std::string::npos)
      << msg;
  EXPECT_TRUE(torch::equal(fresh->cls_token, before));  // nothing copied on error
  // Non-strict: reported, the rest loaded.
  LoadReport r = load_tensors(*fresh, tensors, "ckpt.safetensors", /*strict=*/false);
  EXPECT_EQ(r.missing, (std::vector<std::string>{"blocks.1.weight", "norm.running_var"}));
  EXPECT_TRUE(torch::equal(fresh->cls_token, tensors.at("cls_token")));
}

TEST(StateDict, UnexpectedTensorNamed) {
  TinyNet net;
  TensorMap tensors = named_tensors(*net);
  tensors["blocks.2.weight"] = torch::zeros({4, 4});
  const std::string msg = error_of([&] { load_tensors(*net, tensors, "x.safetensors"); });
  EXPECT_NE(msg.find("FormatError: x.safetensors: unexpected tensor 'blocks.2.weight'"),
            std::string::npos)
      << msg;
  EXPECT_EQ(load_tensors(*net, tensors, "x", false).unexpected,
            std::vector<std::string>{"blocks.2.weight"});
}

TEST(StateDict, WrongShapeNamedWithBothShapes) {
  TinyNet net;
  TensorMap tensors = named_tensors(*net);
  tensors["head.weight"] = torch::zeros({2, 5});
  const std::string msg = error_of([&] { load_tensors(*net, tensors, "x.safetensors"); });
  EXPECT_NE(
      msg.find("ShapeError: x.safetensors: tensor 'head.weight' has shape [2, 5], expected [2, 4]"),
      std::string::npos)
      << msg;
}

TEST(StateDict, OnlyExactWideningLoads) {
  TinyNet net;
  TensorMap tensors = named_tensors(*net);
  tensors["norm.running_mean"] = torch::zeros({4}, torch::kDouble);
  const std::string msg = error_of([&] { load_tensors(*net, tensors, "x.safetensors"); });
  EXPECT_NE(
      msg.find(
          "ShapeError: x.safetensors: tensor 'norm.running_mean' has dtype Double, expected Float"),
      std::string::npos)
      << msg;
  // Integers never load into floats (a count is not a weight).
  tensors = named_tensors(*net);
  tensors["cls_token"] = torch::ones({1, 1, 4}, torch::kInt);
  EXPECT_NE(error_of([&] { load_tensors(*net, tensors, "x.safetensors"); }).find("has dtype Int, expected Float"),
            std::string::npos);
  // A half-precision file (how a study commits its weights) loads into the fp32 model exactly as
  // stored: every value equals its F16 / BF16 rounding, nothing else changes.
  for (const auto dtype : {torch::kHalf, torch::kBFloat16}) {
    const std::string path = test::temp_dir("dt") + "/half.safetensors";
    TinyNet source;
    TensorMap half;
    for (const auto& [name, t] : named_tensors(*source)) half[name] = t.is_floating_point() ? t.to(dtype) : t;
    write_safetensors(path, half);
    TinyNet loaded;
    load_module(path, *loaded);
    for (const auto& [name, t] : named_tensors(*loaded)) {
      EXPECT_EQ(t.scalar_type(), named_tensors(*source).at(name).scalar_type()) << name;
      EXPECT_TRUE(torch::equal(t, half.at(name).to(t.scalar_type()))) << name;
      if (name == "head.weight") {
        EXPECT_FALSE(torch::equal(t, named_tensors(*source).at(name))) << "no rounding?";
      }
    }
  }
}

// --- CLI -----------------------------------------------------------------------------------------

TEST(WeightsCli, InfoListsTensorsMetadataAndTotals) {
  std::string out;
  const std::string fixture = std::string(TOKCOM_TEST_DATA) + "/safetensors_fixture.safetensors";
  ASSERT_EQ(test::run_cli("weights info " + fixture, &out), 0) << out;
  for (const char* s : {"a_f32", "F32", "[2, 3]", "d_bf16", "BF16", "l_empty", "[2, 0]", "k_scalar",
                        "[]", "format", "make_safetensors_fixture.py", "12 tensors", "35 elements"})
    EXPECT_NE(out.find(s), std::string::npos) << s << " not in:\n" << out;
}

TEST(WeightsCli, InfoOnTruncatedFileExitsWithFormatError) {
  const std::string dir = test::temp_dir("cli");
  const std::string bytes =
      read_file(std::string(TOKCOM_TEST_DATA) + "/safetensors_fixture.safetensors");
  write_file_atomic(dir + "/cut.safetensors", bytes.substr(0, bytes.size() / 2));
  std::string out;
  EXPECT_EQ(test::run_cli("weights info " + dir + "/cut.safetensors", &out), 4) << out;
  EXPECT_NE(out.find("FormatError"), std::string::npos) << out;
  EXPECT_NE(out.find("cut.safetensors"), std::string::npos) << out;
}

TEST(WeightsCli, ConvertToHalfKeepsNamesIntegersAndMetadata) {
  const std::string dir = test::temp_dir("convert");
  TensorMap in;
  in["w"] = torch::randn({3, 5});
  in["b"] = torch::randn({5}, torch::kDouble);
  in["count"] = torch::tensor({7}, torch::kLong);
  write_safetensors(dir + "/in.safetensors", in, {{"stage", "backbone"}});
  std::string out;
  ASSERT_EQ(test::run_cli("weights convert " + dir + "/in.safetensors -o " + dir + "/half.safetensors --dtype f16", &out),
            0)
      << out;
  EXPECT_NE(out.find("2 of 3 tensors to F16"), std::string::npos) << out;
  const Safetensors half = read_safetensors(dir + "/half.safetensors");
  EXPECT_EQ(half.tensors.at("w").scalar_type(), torch::kHalf);
  EXPECT_TRUE(torch::equal(half.tensors.at("w"), in.at("w").to(torch::kHalf)));
  EXPECT_TRUE(torch::equal(half.tensors.at("b"), in.at("b").to(torch::kHalf)));
  EXPECT_TRUE(torch::equal(half.tensors.at("count"), in.at("count")));
  EXPECT_EQ(half.metadata.at("stage"), "backbone");
  EXPECT_EQ(half.metadata.at("dtype"), "F16");
  // Back to F32: the half values exactly (widening is exact), in place through the temp file.
  ASSERT_EQ(test::run_cli("weights convert " + dir + "/half.safetensors -o " + dir + "/half.safetensors --dtype f32",
                          &out),
            0)
      << out;
  EXPECT_TRUE(torch::equal(read_safetensors(dir + "/half.safetensors").tensors.at("w"),
                           in.at("w").to(torch::kHalf).to(torch::kFloat)));
}

TEST(WeightsCli, DeltaLeavesOutTheBaseTensorsAndFillPutsThemBackFromThatBaseOnly) {
  const std::string dir = test::temp_dir("delta");
  TensorMap base, full;
  base["device.w"] = torch::randn({4, 6});
  base["device.count"] = torch::tensor({3}, torch::kLong);
  base["server.w"] = torch::randn({6});
  full = base;
  full["server.w"] = base["server.w"] + 1;      // trained: differs from the base
  full["jscc.w"] = torch::randn({2, 6});         // not in the base
  write_safetensors(dir + "/base.safetensors", base);
  write_safetensors(dir + "/full.safetensors", full, {{"stage", "jscc"}});
  std::string out;
  ASSERT_EQ(test::run_cli("weights convert " + dir + "/full.safetensors -o " + dir + "/delta.safetensors --dtype f16 "
                              "--delta-from " + dir + "/base.safetensors",
                          &out),
            0)
      << out;
  EXPECT_NE(out.find("2 equal to"), std::string::npos) << out;
  const Safetensors delta = read_safetensors(dir + "/delta.safetensors");
  ASSERT_EQ(delta.tensors.size(), 2u);
  EXPECT_EQ(delta.tensors.count("server.w") + delta.tensors.count("jscc.w"), 2u);
  EXPECT_EQ(delta.metadata.at("delta_tensors"), "device.count,device.w");
  // Filled from the same base: the whole model at F16, as a plain convert gives it, without the delta keys.
  ASSERT_EQ(test::run_cli("weights convert " + dir + "/delta.safetensors -o " + dir + "/filled.safetensors --dtype f16 "
                              "--fill-from " + dir + "/base.safetensors",
                          &out),
            0)
      << out;
  ASSERT_EQ(test::run_cli("weights convert " + dir + "/full.safetensors -o " + dir + "/plain.safetensors --dtype f16",
                          &out),
            0)
      << out;
  const Safetensors filled = read_safetensors(dir + "/filled.safetensors"),
                    plain = read_safetensors(dir + "/plain.safetensors");
  ASSERT_EQ(filled.tensors.size(), plain.tensors.size());
  for (const auto& [name, t] : plain.tensors) {
    EXPECT_EQ(filled.tensors.at(name).scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(filled.tensors.at(name), t)) << name;
  }
  EXPECT_EQ(filled.metadata, plain.metadata);
  // Another base (one element of a left-out tensor differs): refused, nothing written.
  TensorMap other = base;
  other["device.w"] = base["device.w"].clone();
  other["device.w"][1][2] += 0.5;
  write_safetensors(dir + "/other.safetensors", other);
  EXPECT_EQ(test::run_cli("weights convert " + dir + "/delta.safetensors -o " + dir + "/wrong.safetensors --fill-from " +
                              dir + "/other.safetensors",
                          &out),
            3)
      << out;
  EXPECT_NE(out.find("is a delta of another base than"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(dir + "/wrong.safetensors"));
  // A file that is not a delta, and both flags at once: usage errors.
  EXPECT_EQ(test::run_cli("weights convert " + dir + "/full.safetensors -o " + dir + "/x.safetensors --fill-from " + dir +
                              "/base.safetensors",
                          &out),
            6)
      << out;
  EXPECT_NE(out.find("is not a delta"), std::string::npos) << out;
  EXPECT_EQ(test::run_cli("weights convert " + dir + "/full.safetensors -o " + dir + "/x.safetensors --fill-from " + dir +
                              "/base.safetensors --delta-from " + dir + "/base.safetensors",
                          &out),
            6)
      << out;
}

TEST(WeightsCli, ConvertRefusesWhatTheTargetCannotHold) {
  const std::string dir = test::temp_dir("convert");
  TensorMap in;
  in["ok"] = torch::ones({2});
  in["big"] = torch::tensor({1.0f, -1.0e6f});
  write_safetensors(dir + "/in.safetensors", in);
  std::string out;
  EXPECT_EQ(test::run_cli("weights convert " + dir + "/in.safetensors -o " + dir + "/out.safetensors", &out), 3) << out;
  EXPECT_NE(out.find("tensor 'big' holds 1e+06, beyond F16's largest finite value 65504"), std::string::npos) << out;
  EXPECT_FALSE(std::filesystem::exists(dir + "/out.safetensors"));
  // BF16 has F32's range: the same file converts.
  EXPECT_EQ(test::run_cli("weights convert " + dir + "/in.safetensors -o " + dir + "/out.safetensors --dtype bf16", &out),
            0)
      << out;
  EXPECT_EQ(test::run_cli("weights convert " + dir + "/in.safetensors -o " + dir + "/x.safetensors --dtype int8", &out),
            6)
      << out;
  EXPECT_NE(out.find("--dtype 'int8': expected f16, bf16 or f32"), std::string::npos) << out;
}
