// Fold-in on a trained model: the exact Cholesky solve against the CG fold (engine/fold_in.h)
// warm-started from the user's trained row and from no start, for random users of the model with
// one random item added to their training history (what the server folds after one event).
// Prints the mean time of each, and the CG folds' mean relative distance from the Cholesky one.
// Usage: build/bench/fold_model_bench MODEL_VERSION_DIR [USERS (default 3000)]
// (e.g. /tmp/recloop-http/models-auto/v000001, the model of bench/run_http.sh).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <span>
#include <string>

#include "engine/fold_in.h"
#include "engine/model_io.h"

namespace recloop {
namespace {

double Micros(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

int Run(const std::string& path, int users) {
  auto model = LoadModel(path);
  if (!model.ok()) {
    std::fprintf(stderr, "fold_model_bench: %s\n", model.status().ToString().c_str());
    return 1;
  }
  if (model->params.feedback != FeedbackKind::kImplicit || model->params.cg_steps <= 0 ||
      !model->has_factors()) {
    std::fprintf(stderr, "fold_model_bench: %s is not an implicit model trained by CG\n",
                 path.c_str());
    return 1;
  }
  FactorModel cholesky_model = *model;
  cholesky_model.params.cg_steps = 0;  // folded by Cholesky, as a model trained with --cholesky
  const auto cg = FoldIn::Create(*model);
  const auto cholesky = FoldIn::Create(cholesky_model);
  if (!cg.ok() || !cholesky.ok()) return 1;
  std::mt19937 rng(1);
  std::uniform_int_distribution<int32_t> pick_user(0, static_cast<int32_t>(model->num_users()) - 1);
  std::uniform_int_distribution<int32_t> pick_item(0, model->num_items() - 1);
  double t_exact = 0, t_warm = 0, t_cold = 0, d_warm = 0, d_cold = 0, history = 0;
  for (int n = 0; n < users; ++n) {
    const int32_t u = pick_user(rng);
    FoldHistory h(*model);
    const auto items = model->seen.RowIndices(u);
    const auto values = model->seen.RowValues(u);
    for (size_t j = 0; j < items.size(); ++j) h.Add(items[j], values[j]);
    h.Add(pick_item(rng), 1.0f);
    h.SortByItem();
    history += static_cast<double>(h.size());
    const std::span<const float> row(model->user_factors.row(u).data(), model->user_factors.cols());
    const auto t0 = std::chrono::steady_clock::now();
    const auto exact = cholesky->Fold(h.items(), h.values());
    const auto t1 = std::chrono::steady_clock::now();
    const auto cold = cg->Fold(h.items(), h.values());
    const auto t2 = std::chrono::steady_clock::now();
    const auto warm = cg->Fold(h.items(), h.values(), row);
    const auto t3 = std::chrono::steady_clock::now();
    if (!exact.ok() || !cold.ok() || !warm.ok()) return 1;
    t_exact += Micros(t0, t1);
    t_cold += Micros(t1, t2);
    t_warm += Micros(t2, t3);
    const float norm = exact->factors.norm();
    d_cold += (cold->factors - exact->factors).norm() / norm;
    d_warm += (warm->factors - exact->factors).norm() / norm;
  }
  std::printf(
      "%d users, history %.1f items on average, K %ld\n"
      "cholesky %.2f us | cg from the trained row %.2f us (distance %.1e) | cg from zero %.2f us "
      "(distance %.1e)\n",
      users, history / users, static_cast<long>(model->item_factors.cols()), t_exact / users,
      t_warm / users, d_warm / users, t_cold / users, d_cold / users);
  return 0;
}

}  // namespace
}  // namespace recloop

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL_VERSION_DIR [USERS]\n", argv[0]);
    return 2;
  }
  return recloop::Run(argv[1], argc > 2 ? std::max(1, std::atoi(argv[2])) : 3000);
}
