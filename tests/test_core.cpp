// Core: config schema/overrides, atomic writes, shape checks, progress formatting.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <torch/torch.h>

#include "common/helpers.h"
#include "tokcom/core/atomic_file.h"
#include "tokcom/core/check.h"
#include "tokcom/core/config.h"
#include "tokcom/core/errors.h"
#include "tokcom/core/progress.h"

using namespace tokcom;
using tokcom::test::error_of;

TEST(Config, DefaultsLoadAndOverridesApply) {
  Config c = Config::load("", {"data.image_size=32", "data.skip_bad=true", "data.dataset=imagenette"});
  EXPECT_EQ(c.get_int("data.image_size"), 32);
  EXPECT_TRUE(c.get_bool("data.skip_bad"));
  EXPECT_EQ(c.get_string("data.dataset"), "imagenette");
  EXPECT_EQ(c.get_int("data.workers"), 2);  // untouched default
}

TEST(Config, UnknownKeyNamesKeyAndOrigin) {
  const std::string msg = error_of([] { Config::load("", {"data.imagesize=32"}); });
  EXPECT_NE(msg.find("ConfigError"), std::string::npos) << msg;
  EXPECT_NE(msg.find("data.imagesize"), std::string::npos) << msg;
  EXPECT_NE(msg.find("image_size"), std::string::npos) << msg;  // lists the known keys
}

TEST(Config, WrongTypeRejected) {
  const std::string msg = error_of([] { Config::load("", {"data.image_size=big"}); });
  EXPECT_NE(msg.find("expects an int"), std::string::npos) << msg;
  EXPECT_NE(error_of([] { Config::load("", {"data.skip_bad=3"}); }).find("expects a bool"), std::string::npos);
  EXPECT_NE(error_of([] { Config::load("", {"data=3"}); }).find("section"), std::string::npos);
  EXPECT_NE(error_of([] { Config::load("", {"noequals"}); }).find("key.sub=value"), std::string::npos);
}

// Found by fuzz/fuzz_config.cpp: a non-scalar key escaped as YAML::BadConversion (not a ConfigError).
TEST(Config, ComplexKeysAreAConfigError) {
  const std::string msg = error_of([] { Config::from_yaml("data:\n  ? [a, b]\n  : 1\n"); });
  EXPECT_NE(msg.find("ConfigError: <string>: a key under 'data' is a list, expected a plain name"), std::string::npos)
      << msg;
  EXPECT_NE(error_of([] { Config::from_yaml("? {x: 1}\n: 2\n"); }).find("ConfigError"), std::string::npos);
}

TEST(Config, FileErrorsNameTheFile) {
  const std::string dir = test::temp_dir("cfg");
  const std::string bad = dir + "/bad.yaml";
  std::ofstream(bad) << "data:\n  image_size: [1, 2\n";
  const std::string msg = error_of([&] { Config::load(bad); });
  EXPECT_NE(msg.find("bad.yaml"), std::string::npos) << msg;
  const std::string unknown = dir + "/unknown.yaml";
  std::ofstream(unknown) << "data:\n  colour: red\n";
  const std::string msg2 = error_of([&] { Config::load(unknown); });
  EXPECT_NE(msg2.find("unknown.yaml"), std::string::npos) << msg2;
  EXPECT_NE(msg2.find("data.colour"), std::string::npos) << msg2;
  EXPECT_NE(error_of([] { Config::load("no-such-config"); }).find("no config named"), std::string::npos);
}

TEST(Config, SaveRoundTripsAndDigestTracksContent) {
  Config a = Config::load("", {"data.image_size=40"});
  const std::string dir = test::temp_dir("cfg");
  a.save(dir + "/config.yaml");
  Config b = Config::load(dir + "/config.yaml");
  EXPECT_EQ(b.get_int("data.image_size"), 40);
  EXPECT_EQ(a.digest(), b.digest());
  Config c = Config::load("", {"data.image_size=41"});
  EXPECT_NE(a.digest(), c.digest());
}

TEST(AtomicFile, FailedWriteLeavesOldFileIntact) {
  const std::string dir = test::temp_dir("atomic");
  const std::string path = dir + "/out.csv";
  write_file_atomic(path, "old contents\n");
  EXPECT_THROW(write_stream_atomic(path, [](std::ostream& out) {
                 out << "half a new file";
                 throw DataError("simulated failure mid-write");
               }),
               DataError);
  EXPECT_EQ(read_file(path), "old contents\n");
  // No temp file left behind.
  int files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
  write_file_atomic(path, "new\n");
  EXPECT_EQ(read_file(path), "new\n");
}

TEST(AtomicFile, UnwritableFolderIsAClearError) {
  EXPECT_THROW(write_file_atomic("/proc/definitely/not/here.txt", "x"), UsageError);
  EXPECT_THROW(read_file("/no/such/file"), DataError);
}

TEST(Check, ShapeMessageSaysExpectedAndActual) {
  const auto t = torch::zeros({4, 62, 19});
  EXPECT_NO_THROW(check_shape("JsccDecoder::forward", "y", t, {-1, -1, 19}));
  const std::string msg = error_of([&] { check_shape("JsccDecoder::forward", "y", t, {-1, -1, 28}); });
  EXPECT_NE(msg.find("JsccDecoder::forward: y has shape [4, 62, 19], expected [*, *, 28]"), std::string::npos) << msg;
  EXPECT_THROW(check_shape("f", "y", t, {4, 62}), ShapeError);
  EXPECT_THROW(check_dtype("f", "y", t, torch::kInt64), ShapeError);
}

TEST(Progress, DurationFormat) {
  EXPECT_EQ(format_duration(12.34), "12.3s");
  EXPECT_EQ(format_duration(185), "3m05s");
  EXPECT_EQ(format_duration(3720), "1h02m");
}
