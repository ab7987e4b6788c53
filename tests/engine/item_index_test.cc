#include "engine/item_index.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <vector>

#include "engine/index_calibration.h"
#include "engine/top_k.h"
#include "gtest/gtest.h"
#include "tests/engine/random_model.h"
#include "tests/test_util.h"

namespace recloop {
namespace {

using test::RandomModel;

// Inner-product queries for every user of `m`, row-major users x index.dim().
std::vector<float> AllUserQueries(const FactorModel& m, const ItemIndex& index) {
  std::vector<float> q(static_cast<size_t>(m.num_users()) * index.dim());
  for (int32_t u = 0; u < m.num_users(); ++u) {
    index.MakeQuery(
        {m.user_factors.row(u).data(), static_cast<size_t>(m.item_factors.cols())},
        {q.data() + static_cast<size_t>(u) * index.dim(), static_cast<size_t>(index.dim())});
  }
  return q;
}

// Checks the index's top-k for every user against a brute-force Eigen top-k of the model's
// ranking scores: same items in the same order, except that two items whose scores are within
// float rounding of each other may swap.
void ExpectMatchesBruteForce(const FactorModel& m, const ItemIndex& index, int k) {
  const std::vector<float> q = AllUserQueries(m, index);
  std::vector<float> scores(static_cast<size_t>(m.num_users()) * k);
  std::vector<int64_t> items(scores.size());
  ASSERT_OK(index.Search(m.num_users(), q.data(), k, scores.data(), items.data()));
  std::vector<float> brute(m.num_items());
  for (int32_t u = 0; u < m.num_users(); ++u) {
    m.ScoreItems(u, brute);
    const auto top = TopK(brute, k);
    for (int r = 0; r < k; ++r) {
      const int64_t got = items[static_cast<size_t>(u) * k + r];
      const float got_score = scores[static_cast<size_t>(u) * k + r];
      EXPECT_NEAR(got_score, top[r].score, 1e-4f) << "user " << u << " rank " << r;
      if (got != top[r].item) {
        ASSERT_GE(got, 0);
        EXPECT_NEAR(brute[got], top[r].score, 1e-4f)
            << "user " << u << " rank " << r << ": " << got << " vs " << top[r].item;
      }
    }
  }
}

TEST(ItemIndex, ExactMatchesBruteForceForExplicitModelWithBiases) {
  const FactorModel m = RandomModel(300, 2000, 16, /*explicit_feedback=*/true, 1);
  ASSERT_OK_AND_ASSIGN(const ItemIndex index, ItemIndex::Build(m));
  EXPECT_EQ(index.type(), IndexType::kExact);
  EXPECT_TRUE(index.has_bias());
  EXPECT_EQ(index.dim(), 17);
  ExpectMatchesBruteForce(m, index, 20);
}

TEST(ItemIndex, ExactMatchesBruteForceForImplicitModel) {
  const FactorModel m = RandomModel(300, 2000, 16, /*explicit_feedback=*/false, 2);
  ASSERT_OK_AND_ASSIGN(const ItemIndex index, ItemIndex::Build(m));
  EXPECT_FALSE(index.has_bias());
  EXPECT_EQ(index.dim(), 16);
  ExpectMatchesBruteForce(m, index, 20);
}

// The in-run baseline of the benchmarks: the index built on libfaiss's own kernels must give
// the same results as recloop's (both checked against brute force, batch and single queries).
TEST(ItemIndex, LibfaissKernelsAndNativeKernelsAgree) {
  const FactorModel m = RandomModel(100, 3000, 32, /*explicit_feedback=*/true, 4);
  for (const bool native : {false, true}) {
    ItemIndexOptions options;
    options.native_kernels = native;
    ASSERT_OK_AND_ASSIGN(const ItemIndex index, ItemIndex::Build(m, options));
    ExpectMatchesBruteForce(m, index, 10);
    const std::vector<float> q = AllUserQueries(m, index);
    float score = 0;
    int64_t item = -1;
    ASSERT_OK(index.Search(1, q.data(), 1, &score, &item));
    std::vector<float> brute(m.num_items());
    m.ScoreItems(0, brute);
    EXPECT_EQ(item, TopK(brute, 1)[0].item) << (native ? "native" : "libfaiss");
  }
}

TEST(ItemIndex, KLargerThanCatalogueFillsTailWithMinusOne) {
  const FactorModel m = RandomModel(2, 5, 4, true, 3);
  ASSERT_OK_AND_ASSIGN(const ItemIndex index, ItemIndex::Build(m));
  const std::vector<float> q = AllUserQueries(m, index);
  std::vector<float> scores(8);
  std::vector<int64_t> items(8);
  ASSERT_OK(index.Search(1, q.data(), 8, scores.data(), items.data()));
  for (int r = 0; r < 5; ++r) EXPECT_GE(items[r], 0);
  for (int r = 5; r < 8; ++r) {
    EXPECT_EQ(items[r], -1);
    EXPECT_EQ(scores[r], -std::numeric_limits<float>::infinity());
  }
}

TEST(ItemIndex, RejectsBadArguments) {
  FactorModel popularity_only;
  popularity_only.items = IdMap::FromExternals({"a"});
  EXPECT_FALSE(ItemIndex::Build(popularity_only).ok());
  const FactorModel m = RandomModel(2, 10, 4, false, 4);
  ItemIndexOptions bad;
  bad.hnsw_m = 0;
  EXPECT_FALSE(ItemIndex::Build(m, bad).ok());
  ASSERT_OK_AND_ASSIGN(const ItemIndex index, ItemIndex::Build(m));
  std::vector<float> q(4), s(1);
  std::vector<int64_t> i(1);
  EXPECT_FALSE(index.Search(1, q.data(), 0, s.data(), i.data()).ok());
  EXPECT_FALSE(index.Search(-1, q.data(), 1, s.data(), i.data()).ok());
  EXPECT_FALSE(ParseIndexType("ivf").ok());
  EXPECT_EQ(*ParseIndexType("hnsw"), IndexType::kHnsw);
}

TEST(ItemIndex, AutoKeepsExactSearchBelowTheThreshold) {
  const FactorModel m = RandomModel(50, 3000, 8, true, 5);
  ItemIndexOptions o;
  o.hnsw_min_items = 3001;
  ASSERT_OK_AND_ASSIGN(const ItemIndex exact, ItemIndex::Build(m, o));
  EXPECT_EQ(exact.type(), IndexType::kExact);
  EXPECT_EQ(exact.measured_recall(), -1);
  // Above it, but so small that even the narrowest beam scores about as many items as an exact
  // query (32 x M 16 x 3 >= 1,500): exact search still.
  const FactorModel tiny = RandomModel(50, 1500, 8, true, 5);
  o.hnsw_min_items = 0;
  ASSERT_OK_AND_ASSIGN(const ItemIndex still_exact, ItemIndex::Build(tiny, o));
  EXPECT_EQ(still_exact.type(), IndexType::kExact);
}

TEST(ItemIndex, AutoPicksTheSmallestBeamThatReachesTheRecall) {
  const FactorModel m = RandomModel(1200, 8000, 8, false, 6);
  ItemIndexOptions o;
  o.hnsw_min_items = 0;
  ASSERT_OK_AND_ASSIGN(const ItemIndex index, ItemIndex::Build(m, o));
  ASSERT_EQ(index.type(), IndexType::kHnsw);
  const int ef = index.default_ef_search();
  EXPECT_GE(index.measured_recall(), o.auto_min_recall);
  // Users the calibration did not sample (it takes 500 evenly spaced ones) get the recall too,
  // with the serving margin, and a narrower beam would not have reached it on the sample.
  ItemIndexOptions exact_options;
  exact_options.type = IndexType::kExact;
  ASSERT_OK_AND_ASSIGN(const ItemIndex exact, ItemIndex::Build(m, exact_options));
  std::vector<float> queries;
  for (int64_t u = 1; u < m.user_factors.rows(); u += 2) {
    queries.insert(queries.end(), m.user_factors.row(u).data(),
                   m.user_factors.row(u).data() + m.user_factors.cols());
  }
  const int64_t n = static_cast<int64_t>(queries.size()) / index.dim();
  ASSERT_OK_AND_ASSIGN(const double held_out,
                       MeasureRecall(index, exact, queries.data(), n, 10, ef));
  EXPECT_GE(held_out, 0.95);
  if (ef > 32) {
    std::vector<float> sample;
    for (int q = 0; q < kCalibrationQueries; ++q) {
      const int64_t u = q * m.user_factors.rows() / kCalibrationQueries;
      sample.insert(sample.end(), m.user_factors.row(u).data(),
                    m.user_factors.row(u).data() + m.user_factors.cols());
    }
    ASSERT_OK_AND_ASSIGN(const double narrower, MeasureRecall(index, exact, sample.data(),
                                                              kCalibrationQueries, 10, ef / 2));
    EXPECT_LT(narrower, o.auto_min_recall);
  }
  // The calibrated beam is saved with the index.
  const std::string path = ::testing::TempDir() + "/calibrated.faiss";
  ASSERT_OK(index.Save(path));
  ASSERT_OK_AND_ASSIGN(const ItemIndex loaded, ItemIndex::Load(path));
  EXPECT_EQ(loaded.default_ef_search(), ef);
}

TEST(ItemIndex, AutoFallsBackToExactWhenNoAffordableBeamReachesTheRecall) {
  const FactorModel m = RandomModel(600, 6000, 32, false, 7);
  ItemIndexOptions o;
  o.hnsw_min_items = 0;
  o.auto_min_recall = 1.0;  // every one of 500 x 10 neighbours, with beams of 32 and 64 only
  ASSERT_OK_AND_ASSIGN(const ItemIndex index, ItemIndex::Build(m, o));
  EXPECT_EQ(index.type(), IndexType::kExact);
  o.auto_min_recall = 0;
  EXPECT_FALSE(ItemIndex::Build(m, o).ok());
}

double MillisSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// Acceptance (scaled down for test time): HNSW recall@10 against exact search >= 0.95 on a
// random 20K-item catalogue at K = 32, explicit model (bias-augmented vectors). Prints build
// time and single-query latency of both indexes (one OpenMP thread, the serving setting).
TEST(ItemIndex, HnswRecallAtTenAgainstExact) {
  constexpr int kUsers = 500;
  constexpr int kTopK = 10;
  const FactorModel m = RandomModel(kUsers, 20'000, 32, true, 6, /*seen_per_user=*/1);
  ItemIndexOptions o;
  o.type = IndexType::kExact;
  auto t0 = std::chrono::steady_clock::now();
  ASSERT_OK_AND_ASSIGN(const ItemIndex exact, ItemIndex::Build(m, o));
  const double exact_build_ms = MillisSince(t0);
  o.type = IndexType::kHnsw;
  // Smaller than the defaults to keep the test fast; the recall bound must hold even so.
  o.hnsw_m = 16;
  o.hnsw_ef_construction = 40;
  o.hnsw_ef_search = 256;
  t0 = std::chrono::steady_clock::now();
  ASSERT_OK_AND_ASSIGN(const ItemIndex hnsw, ItemIndex::Build(m, o));
  const double hnsw_build_ms = MillisSince(t0);

  const std::vector<float> q = AllUserQueries(m, exact);
  std::vector<float> es(kUsers * kTopK), hs(kUsers * kTopK);
  std::vector<int64_t> ei(kUsers * kTopK), hi(kUsers * kTopK);
  // One query per call, as the server issues them.
  t0 = std::chrono::steady_clock::now();
  for (int u = 0; u < kUsers; ++u) {
    ASSERT_OK(exact.Search(1, q.data() + u * exact.dim(), kTopK, es.data() + u * kTopK,
                           ei.data() + u * kTopK));
  }
  const double exact_us = MillisSince(t0) * 1000 / kUsers;
  t0 = std::chrono::steady_clock::now();
  for (int u = 0; u < kUsers; ++u) {
    ASSERT_OK(hnsw.Search(1, q.data() + u * hnsw.dim(), kTopK, hs.data() + u * kTopK,
                          hi.data() + u * kTopK));
  }
  const double hnsw_us = MillisSince(t0) * 1000 / kUsers;
  int hits = 0;
  for (int u = 0; u < kUsers; ++u) {
    for (int a = 0; a < kTopK; ++a) {
      for (int b = 0; b < kTopK; ++b) hits += hi[u * kTopK + a] == ei[u * kTopK + b];
    }
  }
  const double recall = static_cast<double>(hits) / (kUsers * kTopK);
  std::printf(
      "[ HNSW     ] 20K items K=32: recall@10 %.4f; build exact %.0f ms, hnsw %.0f ms; "
      "query exact %.0f us, hnsw %.0f us\n",
      recall, exact_build_ms, hnsw_build_ms, exact_us, hnsw_us);
  RecordProperty("recall_at_10", std::to_string(recall));
  EXPECT_GE(recall, 0.95);
}

// Extend adds new items to a copy of the HNSW graph: the result answers like an index built
// over all items (recall@10 against exact search over the extended model), finds each new item
// by its own direction, keeps the beam, and leaves the original index untouched.
TEST(ItemIndex, ExtendAddsNewItemsToACopyOfTheGraph) {
  constexpr int kOld = 3'000;
  constexpr int kNew = 300;
  constexpr int kTopK = 10;
  const FactorModel all = RandomModel(200, kOld + kNew, 16, true, 8, /*seen_per_user=*/1);
  FactorModel first = all;  // the first kOld items, as before AppendItems
  first.item_factors = all.item_factors.topRows(kOld).eval();
  first.item_bias = all.item_bias.head(kOld).eval();
  ItemIndexOptions o;
  o.type = IndexType::kHnsw;
  o.hnsw_ef_construction = 40;
  o.hnsw_ef_search = 64;
  ASSERT_OK_AND_ASSIGN(const ItemIndex old_index, ItemIndex::Build(first, o));
  ASSERT_OK_AND_ASSIGN(const ItemIndex extended, old_index.Extend(all));
  EXPECT_EQ(old_index.num_items(), kOld);
  EXPECT_EQ(extended.num_items(), kOld + kNew);
  EXPECT_EQ(extended.type(), IndexType::kHnsw);
  EXPECT_EQ(extended.default_ef_search(), 64);
  EXPECT_TRUE(extended.has_bias());

  o.type = IndexType::kExact;
  ASSERT_OK_AND_ASSIGN(const ItemIndex exact, ItemIndex::Build(all, o));
  const std::vector<float> q = AllUserQueries(all, exact);
  const int users = all.num_users();
  std::vector<float> es(users * kTopK), hs(users * kTopK);
  std::vector<int64_t> ei(users * kTopK), hi(users * kTopK);
  ASSERT_OK(exact.Search(users, q.data(), kTopK, es.data(), ei.data()));
  ASSERT_OK(extended.Search(users, q.data(), kTopK, hs.data(), hi.data()));
  int hits = 0;
  for (int u = 0; u < users; ++u) {
    for (int a = 0; a < kTopK; ++a) {
      for (int b = 0; b < kTopK; ++b) hits += hi[u * kTopK + a] == ei[u * kTopK + b];
    }
  }
  EXPECT_GE(static_cast<double>(hits) / (users * kTopK), 0.9);

  // Each new item is its own nearest neighbour by cosine.
  int found = 0;
  for (int i = kOld; i < kOld + kNew; ++i) {
    float score = 0;
    int64_t item = -1;
    ASSERT_OK(extended.SearchSimilar(1, all.item_factors.row(i).data(), 1, &score, &item));
    found += item == i;
  }
  EXPECT_GE(found, kNew * 95 / 100);

  // Another K, or fewer items than indexed, does not extend it.
  EXPECT_FALSE(old_index.Extend(RandomModel(10, kOld + 1, 8, true, 8)).ok());
  EXPECT_FALSE(extended.Extend(first).ok());
}

// recloop's HNSW search loop and FAISS's walk the same graph with the same beam: the native
// loop must recall at least as well (it is the standard algorithm; FAISS 1.7.3's differs only in
// bookkeeping), and with a beam as wide as the catalogue it must find nearly everything.
TEST(ItemIndex, NativeHnswSearchRecallsAtLeastAsWellAsFaissLoop) {
  SKIP_ACCURACY_FIGURE_UNDER_SANITIZERS();  // the native search runs in the other HNSW tests
  constexpr int kUsers = 300, kTopK = 10;
  const FactorModel m = RandomModel(kUsers, 8'000, 32, /*explicit_feedback=*/true, 8, 1);
  ItemIndexOptions o;
  o.type = IndexType::kExact;
  ASSERT_OK_AND_ASSIGN(const ItemIndex exact, ItemIndex::Build(m, o));
  o.type = IndexType::kHnsw;
  o.hnsw_m = 8;  // a sparse graph, so that recall is well below 1 at a small beam
  o.hnsw_ef_construction = 20;
  ASSERT_OK_AND_ASSIGN(const ItemIndex hnsw, ItemIndex::Build(m, o));
  const std::vector<float> q = AllUserQueries(m, exact);
  std::vector<float> es(kUsers * kTopK), s(kUsers * kTopK);
  std::vector<int64_t> ei(kUsers * kTopK), li(kUsers * kTopK);
  ASSERT_OK(exact.Search(kUsers, q.data(), kTopK, es.data(), ei.data()));
  auto recall = [&](int ef, bool native) {
    ItemSearchParams p;
    p.ef_search = ef;
    p.native_hnsw_search = native;
    EXPECT_OK(hnsw.Search(kUsers, q.data(), kTopK, s.data(), li.data(), p));
    int hits = 0;
    for (int u = 0; u < kUsers; ++u) {
      for (int a = 0; a < kTopK; ++a) {
        EXPECT_GE(li[u * kTopK + a], 0);
        if (a > 0) {
          EXPECT_GE(s[u * kTopK + a - 1], s[u * kTopK + a]);  // best first
        }
        for (int b = 0; b < kTopK; ++b) hits += li[u * kTopK + a] == ei[u * kTopK + b];
      }
    }
    return static_cast<double>(hits) / (kUsers * kTopK);
  };
  for (const int ef : {10, 20, 40}) {
    const double faiss_recall = recall(ef, false);
    const double native_recall = recall(ef, true);
    std::printf("[ HNSW     ] ef %d: recall@10 native loop %.4f, FAISS loop %.4f\n", ef,
                native_recall, faiss_recall);
    EXPECT_GE(native_recall, faiss_recall - 0.01) << "ef " << ef;
  }
  EXPECT_LT(recall(10, true), 0.9);  // the beam matters: the test can tell loops apart
  // A beam as wide as the catalogue reaches every item connected to the entry point (a sparse
  // graph built in parallel may leave a rare item unreachable, for either loop).
  const double full = recall(8'000, true);
  EXPECT_GE(full, 0.995);
  EXPECT_GE(full, recall(8'000, false) - 1e-9);
}

class ItemIndexFileTest : public ::testing::TestWithParam<IndexType> {};

TEST_P(ItemIndexFileTest, SaveLoadRoundTripGivesIdenticalResults) {
  const FactorModel m = RandomModel(50, 1500, 8, true, 7);
  ItemIndexOptions o;
  o.type = GetParam();
  ASSERT_OK_AND_ASSIGN(const ItemIndex index, ItemIndex::Build(m, o));
  test::TempDir dir;
  const std::string path = dir.File("items.faiss");
  ASSERT_OK(index.Save(path));
  ASSERT_OK_AND_ASSIGN(const ItemIndex loaded, ItemIndex::Load(path));
  EXPECT_EQ(loaded.type(), index.type());
  EXPECT_EQ(loaded.num_items(), index.num_items());
  EXPECT_EQ(loaded.factors(), index.factors());
  EXPECT_EQ(loaded.has_bias(), index.has_bias());
  const std::vector<float> q = AllUserQueries(m, index);
  constexpr int k = 15;
  const size_t n = static_cast<size_t>(m.num_users()) * k;
  std::vector<float> s1(n), s2(n);
  std::vector<int64_t> i1(n), i2(n);
  ASSERT_OK(index.Search(m.num_users(), q.data(), k, s1.data(), i1.data()));
  ASSERT_OK(loaded.Search(m.num_users(), q.data(), k, s2.data(), i2.data()));
  EXPECT_EQ(i1, i2);
  EXPECT_EQ(s1, s2);
  ASSERT_OK(index.SearchSimilar(5, m.item_factors.data(), k, s1.data(), i1.data()));
  ASSERT_OK(loaded.SearchSimilar(5, m.item_factors.data(), k, s2.data(), i2.data()));
  EXPECT_EQ(std::vector<int64_t>(i1.begin(), i1.begin() + 5 * k),
            std::vector<int64_t>(i2.begin(), i2.begin() + 5 * k));
  // Saving the loaded index reproduces the file byte for byte.
  const std::string again = dir.File("again.faiss");
  ASSERT_OK(loaded.Save(again));
  std::ifstream a(path, std::ios::binary), b(again, std::ios::binary);
  const std::string ca((std::istreambuf_iterator<char>(a)), std::istreambuf_iterator<char>());
  const std::string cb((std::istreambuf_iterator<char>(b)), std::istreambuf_iterator<char>());
  EXPECT_EQ(ca, cb);
}

TEST_P(ItemIndexFileTest, CorruptedFileIsAnErrorNotACrash) {
  const FactorModel m = RandomModel(5, 300, 8, false, 8);
  ItemIndexOptions o;
  o.type = GetParam();
  ASSERT_OK_AND_ASSIGN(const ItemIndex index, ItemIndex::Build(m, o));
  test::TempDir dir;
  const std::string path = dir.File("items.faiss");
  ASSERT_OK(index.Save(path));
  std::ifstream in(path, std::ios::binary);
  const std::string good((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());

  EXPECT_EQ(ItemIndex::Load(dir.File("missing")).status().code(), absl::StatusCode::kNotFound);
  for (size_t cut : {size_t{0}, size_t{10}, size_t{40}, good.size() / 2, good.size() - 1}) {
    const auto s = ItemIndex::Load(dir.Write("truncated", good.substr(0, cut))).status();
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << "cut at " << cut << ": " << s;
  }
  for (size_t pos :
       {size_t{0}, size_t{12}, size_t{30}, size_t{60}, good.size() / 2, good.size() - 1}) {
    std::string bad = good;
    bad[pos] = static_cast<char>(bad[pos] ^ 0x5a);
    const auto s = ItemIndex::Load(dir.Write("flipped", bad)).status();
    EXPECT_FALSE(s.ok()) << "flipped byte " << pos;
  }
  EXPECT_FALSE(ItemIndex::Load(dir.Write("garbage", std::string(4096, 'x'))).ok());
}

INSTANTIATE_TEST_SUITE_P(ItemIndex, ItemIndexFileTest,
                         ::testing::Values(IndexType::kExact, IndexType::kHnsw),
                         [](const auto& info) { return std::string(ToString(info.param)); });

TEST(ItemIndex, SearchSimilarRanksItemItselfFirst) {
  const FactorModel m = RandomModel(2, 1000, 8, true, 9);
  ASSERT_OK_AND_ASSIGN(const ItemIndex index, ItemIndex::Build(m));
  std::vector<float> s(3);
  std::vector<int64_t> i(3);
  for (int32_t item : {0, 17, 999}) {
    ASSERT_OK(index.SearchSimilar(1, m.item_factors.row(item).data(), 3, s.data(), i.data()));
    EXPECT_EQ(i[0], item);
    EXPECT_NEAR(s[0], 1.0f, 1e-5f);
    EXPECT_LE(s[1], s[0]);
  }
}

}  // namespace
}  // namespace recloop
