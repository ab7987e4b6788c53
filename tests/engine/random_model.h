// A random FactorModel for the item index and recommender tests: Gaussian factors, biases for
// explicit models, random popularity and a random `seen` matrix, all from one seed.
#ifndef RECLOOP_TESTS_ENGINE_RANDOM_MODEL_H_
#define RECLOOP_TESTS_ENGINE_RANDOM_MODEL_H_

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/factor_model.h"

namespace recloop::test {

inline FactorModel RandomModel(int32_t users, int32_t items, int k, bool explicit_feedback,
                               uint32_t seed, int seen_per_user = 20) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 0.3f);
  FactorModel m;
  m.params.feedback = explicit_feedback ? FeedbackKind::kExplicit : FeedbackKind::kImplicit;
  m.params.factors = k;
  std::vector<std::string> u(users), it(items);
  for (int32_t i = 0; i < users; ++i) u[i] = absl::StrCat("u", i);
  for (int32_t i = 0; i < items; ++i) it[i] = absl::StrCat("i", i);
  m.users = IdMap::FromExternals(std::move(u));
  m.items = IdMap::FromExternals(std::move(it));
  m.user_factors.resize(users, k);
  m.item_factors.resize(items, k);
  for (int64_t j = 0; j < m.user_factors.size(); ++j) m.user_factors.data()[j] = normal(rng);
  for (int64_t j = 0; j < m.item_factors.size(); ++j) m.item_factors.data()[j] = normal(rng);
  if (explicit_feedback) {
    m.user_bias.resize(users);
    m.item_bias.resize(items);
    for (int32_t i = 0; i < users; ++i) m.user_bias[i] = normal(rng);
    for (int32_t i = 0; i < items; ++i) m.item_bias[i] = normal(rng);
    m.global_mean = 3.5f;
    // Wide enough that clamping never reorders the test's top items.
    m.min_value = -100.0f;
    m.max_value = 100.0f;
  }
  m.item_popularity.resize(items);
  std::uniform_int_distribution<int> pop(0, 1000);
  for (int32_t i = 0; i < items; ++i) m.item_popularity[i] = static_cast<float>(pop(rng));
  std::vector<int32_t> row, col;
  std::vector<float> val;
  std::uniform_int_distribution<int32_t> pick(0, items - 1);
  for (int32_t r = 0; r < users; ++r) {
    std::vector<int32_t> s;
    while (static_cast<int>(s.size()) < std::min(seen_per_user, items)) {
      const int32_t c = pick(rng);
      if (std::find(s.begin(), s.end(), c) == s.end()) s.push_back(c);
    }
    for (int32_t c : s) {
      row.push_back(r);
      col.push_back(c);
      val.push_back(1.0f);
    }
  }
  m.seen = CsrMatrix::FromTriplets(users, items, row, col, val);
  return m;
}

}  // namespace recloop::test

#endif  // RECLOOP_TESTS_ENGINE_RANDOM_MODEL_H_
