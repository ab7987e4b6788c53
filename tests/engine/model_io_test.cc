#include "engine/model_io.h"

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "test_util.h"

namespace recloop {
namespace {

namespace fs = std::filesystem;

FactorModel SmallModel() {
  FactorModel m;
  m.params.algorithm = Algorithm::kAls;
  m.params.feedback = FeedbackKind::kExplicit;
  m.params.factors = 3;
  m.params.iterations = 7;
  m.params.regularization = 0.12f;
  m.params.bias_regularization = 0.5f;
  m.params.alpha = 2.5f;
  m.params.cg_steps = 4;
  m.params.cholesky = true;
  m.params.seed = 99;
  m.params.popularity_half_life_days = 14.5;
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
  m.lineage.data = {"/data/ratings.csv", 1234, 56789, 0x0123456789abcdefULL};
  m.lineage.split = "user:0.2";
  m.lineage.train_interactions = 1000;
  m.lineage.test_interactions = 234;
  m.lineage.metrics = {{"ndcg@10", 0.25}, {"rmse", 0.91}};
  return m;
}

std::string ReadAll(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void FlipByte(const fs::path& p, int64_t offset) {
  std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(offset);
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x5a);
  f.seekp(offset);
  f.write(&c, 1);
}

// A models directory with one saved version of SmallModel().
class ModelIo : public ::testing::Test {
 protected:
  void SetUp() override {
    auto saved = SaveModel(model_, models_);
    ASSERT_TRUE(saved.ok()) << saved.status();
    version_dir_ = saved->path;
  }

  // Loading fails and the message names `file`.
  void ExpectRejectedNaming(const std::string& file) {
    const auto loaded = LoadModel(models_);
    ASSERT_FALSE(loaded.ok()) << file;
    EXPECT_NE(loaded.status().message().find(file), std::string::npos) << loaded.status();
  }

  test::TempDir dir_;
  const std::string models_ = dir_.File("models");
  const FactorModel model_ = SmallModel();  // Random() differs per call: keep the saved one
  std::string version_dir_;
};

constexpr const char* kArrayFiles[] = {"user_factors.f32", "item_factors.f32",    "user_bias.f32",
                                       "item_bias.f32",    "item_popularity.f32", "seen_indptr.i64",
                                       "seen_indices.i32", "seen_values.f32",     "users.txt",
                                       "items.txt"};

TEST_F(ModelIo, SaveLoadRoundTripsBitIdentically) {
  const FactorModel& m = model_;
  ASSERT_OK_AND_ASSIGN(FactorModel back, LoadModel(models_));
  EXPECT_EQ(back.params.algorithm, Algorithm::kAls);
  EXPECT_EQ(back.params.feedback, FeedbackKind::kExplicit);
  EXPECT_EQ(back.params.factors, 3);
  EXPECT_EQ(back.params.iterations, 7);
  EXPECT_EQ(back.params.regularization, 0.12f);
  EXPECT_EQ(back.params.bias_regularization, 0.5f);
  EXPECT_EQ(back.params.alpha, 2.5f);
  EXPECT_EQ(back.params.cg_steps, 4);
  EXPECT_TRUE(back.params.cholesky);
  EXPECT_EQ(back.params.seed, 99u);
  EXPECT_EQ(back.params.popularity_half_life_days, 14.5);
  EXPECT_EQ(back.users.externals(), m.users.externals());
  EXPECT_EQ(back.items.externals(), m.items.externals());
  EXPECT_EQ(back.user_factors, m.user_factors);
  EXPECT_EQ(back.item_factors, m.item_factors);
  EXPECT_EQ(back.user_bias, m.user_bias);
  EXPECT_EQ(back.item_bias, m.item_bias);
  EXPECT_EQ(back.item_popularity, m.item_popularity);
  EXPECT_EQ(back.global_mean, 3.5f);
  EXPECT_EQ(back.min_value, 1.0f);
  EXPECT_EQ(back.max_value, 5.0f);
  EXPECT_EQ(back.seen.indptr(), m.seen.indptr());
  EXPECT_EQ(back.seen.indices(), m.seen.indices());
  EXPECT_EQ(back.seen.values(), m.seen.values());
  EXPECT_EQ(back.PredictRating(1, 2), m.PredictRating(1, 2));

  const ModelLineage& l = back.lineage;
  EXPECT_EQ(l.version, "v000001");
  EXPECT_EQ(l.library_version, LibraryVersion());
  EXPECT_GT(l.created_unix_ms, 0);
  EXPECT_EQ(l.created_utc.size(), 20u) << l.created_utc;  // 2024-05-01T12:00:00Z
  EXPECT_EQ(l.data.path, "/data/ratings.csv");
  EXPECT_EQ(l.data.rows, 1234);
  EXPECT_EQ(l.data.bytes, 56789);
  EXPECT_EQ(l.data.content_xxh64, 0x0123456789abcdefULL);
  EXPECT_EQ(l.split, "user:0.2");
  EXPECT_EQ(l.train_interactions, 1000);
  EXPECT_EQ(l.test_interactions, 234);
  EXPECT_EQ(l.metrics, m.lineage.metrics);
}

TEST_F(ModelIo, PopularityModelWithoutFactorsRoundTrips) {
  FactorModel m = SmallModel();
  m.params.algorithm = Algorithm::kPopular;
  m.params.factors = 0;
  m.user_factors.resize(0, 0);
  m.item_factors.resize(0, 0);
  m.user_bias.resize(0);
  m.item_bias.resize(0);
  ASSERT_OK_AND_ASSIGN(SavedModel saved, SaveModel(m, models_));
  EXPECT_FALSE(fs::exists(fs::path(saved.path) / "user_factors.f32"));
  ASSERT_OK_AND_ASSIGN(FactorModel back, LoadModel(saved.path));
  EXPECT_FALSE(back.has_factors());
  EXPECT_FALSE(back.has_biases());
  EXPECT_EQ(back.params.algorithm, Algorithm::kPopular);
  EXPECT_EQ(back.item_popularity, m.item_popularity);
}

TEST_F(ModelIo, VersionsIncreaseAndCurrentPointsAtTheNewest) {
  EXPECT_EQ(fs::path(version_dir_).filename(), "v000001");
  FactorModel m = SmallModel();
  m.global_mean = 4.0f;
  ASSERT_OK_AND_ASSIGN(SavedModel second, SaveModel(m, models_));
  EXPECT_EQ(second.version, "v000002");
  m.global_mean = 4.5f;
  ASSERT_OK_AND_ASSIGN(SavedModel third, SaveModel(m, models_));
  EXPECT_EQ(third.version, "v000003");
  EXPECT_LT(second.version, third.version);  // names sort in creation order
  const fs::path current = fs::path(models_) / "current";
  ASSERT_TRUE(fs::is_symlink(current));
  EXPECT_EQ(fs::read_symlink(current), "v000003");  // relative: the directory can be moved
  ASSERT_OK_AND_ASSIGN(std::string resolved, ResolveModelDir(models_));
  EXPECT_EQ(fs::path(resolved).filename(), "v000003");
  ASSERT_OK_AND_ASSIGN(FactorModel back, LoadModel(models_));
  EXPECT_EQ(back.global_mean, 4.5f);
  EXPECT_EQ(back.lineage.version, "v000003");
  // No temporary files are left behind by successful saves.
  for (const auto& e : fs::directory_iterator(models_)) {
    EXPECT_NE(e.path().filename().string().rfind(".tmp-", 0), 0u) << e.path();
  }
}

TEST_F(ModelIo, LoadsViaModelsDirAndViaVersionDir) {
  FactorModel m = SmallModel();
  m.global_mean = 2.0f;
  ASSERT_OK(SaveModel(m, models_));
  ASSERT_OK_AND_ASSIGN(FactorModel via_models, LoadModel(models_));
  EXPECT_EQ(via_models.global_mean, 2.0f);
  ASSERT_OK_AND_ASSIGN(FactorModel via_version, LoadModel(version_dir_));  // v000001
  EXPECT_EQ(via_version.global_mean, 3.5f);
  EXPECT_EQ(via_version.lineage.version, "v000001");
}

TEST_F(ModelIo, MissingModelIsNotFound) {
  EXPECT_EQ(LoadModel(dir_.File("nothing")).status().code(), absl::StatusCode::kNotFound);
  fs::create_directories(dir_.path() / "empty");
  EXPECT_EQ(LoadModel(dir_.File("empty")).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ModelIo, TruncatedArrayFilesAreRejectedWithTheirName) {
  for (const char* name : kArrayFiles) {
    const fs::path p = fs::path(version_dir_) / name;
    const std::string original = ReadAll(p);
    fs::resize_file(p, original.size() - 1);
    ExpectRejectedNaming(name);
    std::ofstream(p, std::ios::binary | std::ios::trunc) << original;
  }
  EXPECT_OK(LoadModel(models_));  // restored
}

TEST_F(ModelIo, FlippedByteInEachArrayFileIsRejectedWithItsName) {
  for (const char* name : kArrayFiles) {
    const fs::path p = fs::path(version_dir_) / name;
    const std::string original = ReadAll(p);
    FlipByte(p, static_cast<int64_t>(original.size()) / 2);
    ExpectRejectedNaming(name);
    std::ofstream(p, std::ios::binary | std::ios::trunc) << original;
  }
  EXPECT_OK(LoadModel(models_));
}

TEST_F(ModelIo, MissingArrayFileIsRejectedWithItsName) {
  fs::remove(fs::path(version_dir_) / "item_factors.f32");
  ExpectRejectedNaming("item_factors.f32");
}

TEST_F(ModelIo, CorruptedMetadataIsRejectedWithItsName) {
  const fs::path p = fs::path(version_dir_) / "model.pb";
  const std::string original = ReadAll(p);
  // Every byte of the payload, and the header's reserved, length and checksum fields.
  for (int64_t offset = 12; offset < static_cast<int64_t>(original.size()); ++offset) {
    FlipByte(p, offset);
    const auto loaded = LoadModel(models_);
    ASSERT_FALSE(loaded.ok()) << "flipped byte " << offset;
    EXPECT_EQ(loaded.status().code(), absl::StatusCode::kDataLoss) << loaded.status();
    EXPECT_NE(loaded.status().message().find("model.pb"), std::string::npos) << loaded.status();
    FlipByte(p, offset);
  }
  fs::resize_file(p, original.size() - 3);
  ExpectRejectedNaming("model.pb");
  fs::resize_file(p, 10);
  ExpectRejectedNaming("model.pb");
  std::ofstream(p, std::ios::binary | std::ios::trunc) << "{not a model";
  ExpectRejectedNaming("model.pb");
}

TEST_F(ModelIo, WrongFormatVersionIsRejected) {
  const fs::path p = fs::path(version_dir_) / "model.pb";
  {
    std::fstream f(p, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(8);  // the header's uint32 format version
    const uint32_t version = 999;
    f.write(reinterpret_cast<const char*>(&version), sizeof(version));
  }
  const auto loaded = LoadModel(models_);
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(loaded.status().message().find("model.pb"), std::string::npos) << loaded.status();
  EXPECT_NE(loaded.status().message().find("format version 999"), std::string::npos)
      << loaded.status();
}

TEST_F(ModelIo, FormatVersionOneDirectoryIsAClearError) {
  fs::create_directories(dir_.path() / "old");
  dir_.Write("old/model.json", "{\"format_version\": 1}");
  const auto loaded = LoadModel(dir_.File("old"));
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(loaded.status().message().find("format version 1"), std::string::npos)
      << loaded.status();
}

TEST_F(ModelIo, LeftoverTempDirFromACrashIsIgnored) {
  // A writer that crashed mid-version leaves a hidden temporary directory with partial files.
  const fs::path crashed = fs::path(models_) / ".tmp-12345-999";
  fs::create_directories(crashed);
  dir_.Write("models/.tmp-12345-999/item_factors.f32", "partial");
  dir_.Write("models/.tmp-12345-999/model.pb", "RCLMODEL");
  ASSERT_OK_AND_ASSIGN(FactorModel loaded, LoadModel(models_));
  EXPECT_EQ(loaded.lineage.version, "v000001");
  EXPECT_EQ(fs::read_symlink(fs::path(models_) / "current"), "v000001");
  // A crash after the rename but before the swap leaves a complete, unreferenced version: the
  // next save goes past it and `current` only moves to complete versions.
  ASSERT_OK_AND_ASSIGN(SavedModel next, SaveModel(SmallModel(), models_));
  EXPECT_EQ(next.version, "v000002");
  EXPECT_EQ(fs::read_symlink(fs::path(models_) / "current"), "v000002");
  EXPECT_TRUE(fs::exists(crashed));  // left for the operator; never read
  ASSERT_OK(LoadModel(models_));
}

TEST_F(ModelIo, FailedExtraFilesLeaveCurrentUnchanged) {
  SaveModelOptions options;
  options.write_extra_files = [](const std::string& dir) {
    std::ofstream(dir + "/index.faiss") << "x";
    return absl::InternalError("index build failed");
  };
  const auto saved = SaveModel(SmallModel(), models_, options);
  EXPECT_FALSE(saved.ok());
  EXPECT_EQ(fs::read_symlink(fs::path(models_) / "current"), "v000001");
  int entries = 0;
  for (const auto& e : fs::directory_iterator(models_)) {
    (void)e;
    ++entries;
  }
  EXPECT_EQ(entries, 2);  // v000001 and current: the partial version was removed
  // And a successful hook's files land in the version.
  options.write_extra_files = [](const std::string& dir) {
    std::ofstream(dir + "/index.faiss") << "x";
    return absl::OkStatus();
  };
  ASSERT_OK_AND_ASSIGN(SavedModel ok, SaveModel(SmallModel(), models_, options));
  EXPECT_TRUE(fs::exists(fs::path(ok.path) / "index.faiss"));
}

TEST_F(ModelIo, RejectsInconsistentModelsAndNewlinesInIds) {
  FactorModel m = SmallModel();
  m.item_bias.resize(3);
  EXPECT_EQ(SaveModel(m, models_).status().code(), absl::StatusCode::kInvalidArgument);
  m = SmallModel();
  m.users = IdMap::FromExternals({"al\nice", "bob"});
  EXPECT_EQ(SaveModel(m, models_).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(fs::read_symlink(fs::path(models_) / "current"), "v000001");
}

TEST_F(ModelIo, DescribeModelPrintsTheMetadata) {
  ASSERT_OK_AND_ASSIGN(std::string text, DescribeModel(models_, /*json=*/false));
  EXPECT_NE(text.find("model_version: \"v000001\""), std::string::npos) << text;
  EXPECT_NE(text.find("ndcg@10"), std::string::npos) << text;
  ASSERT_OK_AND_ASSIGN(std::string json, DescribeModel(models_, /*json=*/true));
  EXPECT_NE(json.find("\"algorithm\": \"als\""), std::string::npos) << json;
  EXPECT_NE(json.find("\"split\": \"user:0.2\""), std::string::npos) << json;
}

TEST(ModelIoFingerprint, HashesFileContent) {
  test::TempDir dir;
  const std::string a = dir.Write("a.csv", "user,item\nu,i\n");
  const std::string b = dir.Write("b.csv", "user,item\nu,j\n");
  ASSERT_OK_AND_ASSIGN(DataFingerprint fa, FingerprintFile(a));
  ASSERT_OK_AND_ASSIGN(DataFingerprint fa2, FingerprintFile(a));
  ASSERT_OK_AND_ASSIGN(DataFingerprint fb, FingerprintFile(b));
  EXPECT_EQ(fa.bytes, 14);
  EXPECT_EQ(fa.content_xxh64, fa2.content_xxh64);
  EXPECT_NE(fa.content_xxh64, fb.content_xxh64);
  EXPECT_EQ(FingerprintFile(dir.File("missing")).status().code(), absl::StatusCode::kNotFound);
}

// The distributed trainer's way: the seen matrix streamed block by block is written exactly as
// the matrix itself would be (the same files, byte for byte).
TEST_F(ModelIo, SeenRowsFromASourceAreWrittenAsTheMatrixIs) {
  FactorModel without = model_;
  without.seen = CsrMatrix();
  int calls = 0;
  SaveModelOptions options;
  options.seen_source = [&]() -> absl::StatusOr<SeenRows> {
    ++calls;
    if (calls == 1) return SeenRows{{2}, {1, 3}, {4, 5}};  // user 0
    if (calls == 2) return SeenRows{{1}, {2}, {1}};        // user 1
    return SeenRows{};
  };
  ASSERT_OK_AND_ASSIGN(const SavedModel streamed, SaveModel(without, models_, options));
  EXPECT_EQ(calls, 2);
  for (const char* file : {"seen_indptr.i64", "seen_indices.i32", "seen_values.f32"}) {
    EXPECT_EQ(ReadAll(fs::path(streamed.path) / file), ReadAll(fs::path(version_dir_) / file))
        << file;
  }
  ASSERT_OK_AND_ASSIGN(FactorModel back, LoadModel(streamed.path));
  EXPECT_EQ(back.seen.indptr(), model_.seen.indptr());
  EXPECT_EQ(back.seen.values(), model_.seen.values());
}

TEST_F(ModelIo, ASeenSourceThatEndsEarlyOrMisfitsAbortsTheSave) {
  FactorModel without = model_;
  without.seen = CsrMatrix();
  const std::vector<std::function<absl::StatusOr<SeenRows>()>> bad = {
      [] { return absl::StatusOr<SeenRows>(SeenRows{}); },                    // no rows
      [] { return absl::StatusOr<SeenRows>(SeenRows{{1, 1, 1}, {0, 1, 2}, {1, 1, 1}}); },  // 3 > 2
      [] { return absl::StatusOr<SeenRows>(SeenRows{{2}, {0, 9}, {1, 1}}); },  // item 9 of 4
      [] { return absl::StatusOr<SeenRows>(absl::InternalError("rank 2 is gone")); },
  };
  for (const auto& source : bad) {
    SaveModelOptions options;
    options.seen_source = source;
    EXPECT_FALSE(SaveModel(without, models_, options).ok());
  }
  // Nothing was published: current still names the first version, and no temporary is left.
  EXPECT_EQ(fs::read_symlink(fs::path(models_) / "current").string(), "v000001");
  ASSERT_OK_AND_ASSIGN(const std::vector<std::string> versions, ListVersions(models_));
  EXPECT_EQ(versions.size(), 1u);
  // A model with a seen matrix and a source is a caller's error.
  SaveModelOptions both;
  both.seen_source = [] { return absl::StatusOr<SeenRows>(SeenRows{}); };
  EXPECT_EQ(SaveModel(model_, models_, both).status().code(), absl::StatusCode::kInvalidArgument);
}

// A BPMF rating head (one served sample of K 3) over users and items partly unlike the model's.
FactorModel SmallHead() {
  FactorModel h = SmallModel();
  h.params.algorithm = Algorithm::kBpmf;
  h.params.served_samples = 1;
  h.params.samples = 5;
  h.params.burn_in = 2;
  h.users = IdMap::FromExternals({"alice", "carol"});
  h.user_prior = FactorMatrix::Random(1, 2 + 3 + 9);
  h.item_prior = FactorMatrix::Random(1, 2 + 3 + 9);
  h.global_mean = 3.6f;
  h.lineage.metrics = {{"rmse", 0.9}};
  return h;
}

// A second version, saved with SmallHead() as its rating head.
class ModelIoHead : public ModelIo {
 protected:
  void SetUp() override {
    ModelIo::SetUp();
    SaveModelOptions options;
    options.rating_head = &head_;
    auto saved = SaveModel(model_, models_, options);
    ASSERT_TRUE(saved.ok()) << saved.status();
    head_version_ = saved->path;
  }

  const FactorModel head_ = SmallHead();
  std::string head_version_;
};

TEST_F(ModelIoHead, SavesTheRatingHeadInsideTheVersionAndLoadsItBackEqual) {
  const fs::path dir = fs::path(head_version_) / kRatingHeadDir;
  EXPECT_TRUE(fs::exists(dir / "model.pb"));
  EXPECT_TRUE(fs::exists(dir / "user_factors.f32"));
  EXPECT_FALSE(fs::exists(fs::path(version_dir_) / kRatingHeadDir));
  // The ranking model loads as before; the head through models_/current.
  ASSERT_OK_AND_ASSIGN(FactorModel model, LoadModel(models_));
  EXPECT_EQ(model.lineage.version, "v000002");
  EXPECT_EQ(model.user_factors, model_.user_factors);
  ASSERT_OK_AND_ASSIGN(std::optional<FactorModel> head, LoadRatingHead(models_));
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(head->params.algorithm, Algorithm::kBpmf);
  EXPECT_EQ(head->params.served_samples, 1);
  EXPECT_EQ(head->users.externals(), head_.users.externals());
  EXPECT_EQ(head->items.externals(), head_.items.externals());
  EXPECT_EQ(head->user_factors, head_.user_factors);
  EXPECT_EQ(head->item_factors, head_.item_factors);
  EXPECT_EQ(head->user_bias, head_.user_bias);
  EXPECT_EQ(head->item_bias, head_.item_bias);
  EXPECT_EQ(head->user_prior, head_.user_prior);
  EXPECT_EQ(head->item_prior, head_.item_prior);
  EXPECT_EQ(head->global_mean, 3.6f);
  EXPECT_EQ(head->min_value, 1.0f);
  EXPECT_EQ(head->max_value, 5.0f);
  EXPECT_EQ(head->lineage.metrics, head_.lineage.metrics);
  EXPECT_EQ(head->PredictRating(1, 2), head_.PredictRating(1, 2));
  // By version directory too.
  ASSERT_OK_AND_ASSIGN(std::optional<FactorModel> again, LoadRatingHead(head_version_));
  EXPECT_TRUE(again.has_value());
}

TEST_F(ModelIoHead, AVersionWithoutAHeadHasNone) {
  ASSERT_OK_AND_ASSIGN(std::optional<FactorModel> head, LoadRatingHead(version_dir_));
  EXPECT_FALSE(head.has_value());
  EXPECT_EQ(LoadRatingHead(dir_.File("nothing")).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ModelIoHead, ACorruptedHeadFileIsDataLossNamingIt) {
  const fs::path dir = fs::path(head_version_) / kRatingHeadDir;
  for (const char* name : {"item_factors.f32", "bpmf_user_prior.f32", "model.pb"}) {
    const fs::path p = dir / name;
    const std::string original = ReadAll(p);
    FlipByte(p, static_cast<int64_t>(original.size()) - 2);
    const auto head = LoadRatingHead(models_);
    ASSERT_FALSE(head.ok()) << name;
    EXPECT_EQ(head.status().code(), absl::StatusCode::kDataLoss) << head.status();
    EXPECT_NE(head.status().message().find((dir / name).string()), std::string::npos)
        << head.status();
    std::ofstream(p, std::ios::binary | std::ios::trunc) << original;
  }
  EXPECT_OK(LoadRatingHead(models_));
  // A rating_head/ without its metadata is a damaged version, not a version without a head.
  fs::remove(dir / "model.pb");
  const auto head = LoadRatingHead(models_);
  EXPECT_EQ(head.status().code(), absl::StatusCode::kDataLoss) << head.status();
  EXPECT_NE(head.status().message().find("rating_head"), std::string::npos) << head.status();
}

TEST_F(ModelIoHead, AnInconsistentHeadAbortsTheSave) {
  FactorModel bad = SmallHead();
  bad.item_bias.resize(2);
  SaveModelOptions options;
  options.rating_head = &bad;
  const auto saved = SaveModel(model_, models_, options);
  EXPECT_EQ(saved.status().code(), absl::StatusCode::kInvalidArgument) << saved.status();
  EXPECT_EQ(fs::read_symlink(fs::path(models_) / "current"), "v000002");
}

TEST_F(ModelIoHead, DescribeModelShowsBothHeads) {
  ASSERT_OK_AND_ASSIGN(std::string text, DescribeModel(models_, /*json=*/false));
  const size_t heading = text.find("# rating_head: ");
  ASSERT_NE(heading, std::string::npos) << text;
  EXPECT_LT(text.find("algorithm: \"als\""), heading) << text;
  EXPECT_NE(text.find("algorithm: \"bpmf\"", heading), std::string::npos) << text;

  ASSERT_OK_AND_ASSIGN(std::string json, DescribeModel(models_, /*json=*/true));
  const nlohmann::json j = nlohmann::json::parse(json);  // one object
  EXPECT_EQ(j["model_version"], "v000002");
  EXPECT_EQ(j["params"]["algorithm"], "als");
  ASSERT_TRUE(j.contains("rating_head")) << json;
  EXPECT_EQ(j["rating_head"]["params"]["algorithm"], "bpmf");
  EXPECT_EQ(j["rating_head"]["users"], "2");  // int64 fields are strings in Protobuf JSON
  EXPECT_EQ(j["rating_head"]["lineage"]["metrics"]["rmse"], 0.9);

  // Without a head: no key, and the text has no heading.
  ASSERT_OK_AND_ASSIGN(std::string plain, DescribeModel(version_dir_, /*json=*/true));
  EXPECT_FALSE(nlohmann::json::parse(plain).contains("rating_head")) << plain;
  ASSERT_OK_AND_ASSIGN(std::string plain_text, DescribeModel(version_dir_, /*json=*/false));
  EXPECT_EQ(plain_text.find("rating_head"), std::string::npos) << plain_text;
}

}  // namespace
}  // namespace recloop
