#include "engine/model_io.h"

#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "test_util.h"

namespace recloop {
namespace {

FactorModel SmallModel() {
  FactorModel m;
  m.params.algorithm = Algorithm::kAls;
  m.params.feedback = Feedback::kExplicit;
  m.params.factors = 3;
  m.params.iterations = 7;
  m.params.regularization = 0.12f;
  m.params.seed = 99;
  m.users = IdMap::FromExternals({"alice", "bob"});
  m.items = IdMap::FromExternals({"i1", "i2", "i3", "i4"});
  m.user_factors = FactorMatrix::Random(2, 3);
  m.item_factors = FactorMatrix::Random(4, 3);
  m.user_bias = Eigen::VectorXf::Random(2);
  m.item_bias = Eigen::VectorXf::Random(4);
  m.global_mean = 3.5f;
  m.min_value = 1;
  m.max_value = 5;
  m.item_popularity = Eigen::VectorXf::Random(4);
  m.seen = CsrMatrix::FromTriplets(2, 4, std::vector<int32_t>{0, 0, 1},
                                   std::vector<int32_t>{1, 3, 2}, std::vector<float>{4, 5, 1});
  return m;
}

TEST(ModelIo, SaveLoadRoundTripsExactly) {
  test::TempDir dir;
  const FactorModel m = SmallModel();
  ASSERT_OK(SaveModel(m, dir.File("model")));
  ASSERT_OK_AND_ASSIGN(FactorModel back, LoadModel(dir.File("model")));
  EXPECT_EQ(back.params.factors, 3);
  EXPECT_EQ(back.params.iterations, 7);
  EXPECT_EQ(back.params.seed, 99u);
  EXPECT_EQ(back.users.externals(), m.users.externals());
  EXPECT_EQ(back.items.externals(), m.items.externals());
  EXPECT_EQ(back.user_factors, m.user_factors);
  EXPECT_EQ(back.item_factors, m.item_factors);
  EXPECT_EQ(back.user_bias, m.user_bias);
  EXPECT_EQ(back.item_bias, m.item_bias);
  EXPECT_EQ(back.item_popularity, m.item_popularity);
  EXPECT_EQ(back.global_mean, 3.5f);
  EXPECT_EQ(back.seen.indices(), m.seen.indices());
  EXPECT_EQ(back.seen.values(), m.seen.values());
  EXPECT_EQ(back.PredictRating(1, 2), m.PredictRating(1, 2));
}

TEST(ModelIo, TruncatedFactorFileIsRejectedWithItsName) {
  test::TempDir dir;
  ASSERT_OK(SaveModel(SmallModel(), dir.File("model")));
  const auto path = dir.path() / "model" / "item_factors.f32";
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 4);
  const auto loaded = LoadModel(dir.File("model"));
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("item_factors.f32"), std::string::npos)
      << loaded.status();
}

TEST(ModelIo, CorruptSeenIndexIsRejected) {
  test::TempDir dir;
  ASSERT_OK(SaveModel(SmallModel(), dir.File("model")));
  {
    std::fstream f(dir.path() / "model" / "seen_indices.i32",
                   std::ios::in | std::ios::out | std::ios::binary);
    const int32_t bad = 1000;
    f.write(reinterpret_cast<const char*>(&bad), sizeof(bad));
  }
  const auto loaded = LoadModel(dir.File("model"));
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("out of range"), std::string::npos) << loaded.status();
}

TEST(ModelIo, MissingDirectoryAndBadMetadataAreErrors) {
  test::TempDir dir;
  EXPECT_EQ(LoadModel(dir.File("nothing")).status().code(), absl::StatusCode::kNotFound);
  ASSERT_OK(SaveModel(SmallModel(), dir.File("model")));
  dir.Write("model/model.json", "{\"format_version\": 999}");
  const auto loaded = LoadModel(dir.File("model"));
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.status().message().find("format version 999"), std::string::npos);
  dir.Write("model/model.json", "{not json");
  EXPECT_FALSE(LoadModel(dir.File("model")).ok());
}

}  // namespace
}  // namespace recloop
