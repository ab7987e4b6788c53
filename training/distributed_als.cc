// TrainDistributed (distributed_als.h): the driver, in phases. Reading and the partition are in
// distributed_read.cc, the factor exchange in distributed_exchange.cc, evaluation in
// distributed_eval.cc, writing the model in distributed_save.cc, and the MPI collectives in
// distributed_comm.cc. Every phase is collective: the processes take the same steps in the
// same order.
#include "training/distributed_als.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <csignal>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/timer.h"
#include "engine/csr_matrix.h"
#include "engine/status_macros.h"
#include "tbb/parallel_for.h"
#include "training/distributed_comm.h"
#include "training/distributed_eval.h"
#include "training/distributed_exchange.h"
#include "training/distributed_read.h"
#include "training/distributed_state.h"

namespace recloop {
namespace {

using distributed_internal::Catalogue;
using distributed_internal::Comm;
using distributed_internal::Factors;
using distributed_internal::GatherRows;
using distributed_internal::GatherVector;
using distributed_internal::Partitioned;
using distributed_internal::RowExchange;

absl::Status ValidateDistributedOptions(const DistributedOptions& options) {
  absl::Status valid = ValidateAlsOptions(options.als);
  if (valid.ok()) valid = ValidatePopularityOptions(options.popularity);
  if (valid.ok() && options.eval.k < 1) valid = absl::InvalidArgumentError("k must be >= 1");
  if (valid.ok() && (options.max_message_elements < 1 || options.max_message_elements > INT_MAX)) {
    valid = absl::InvalidArgumentError("max_message_elements must be in [1, INT_MAX]");
  }
  return valid;
}

// What each half-step brings here: the rows of the other side that this process's rows touch
// (block), or all of them (allgather), and the matrices to solve against them (columns
// renumbered into the fetched rows for block).
struct ExchangePlans {
  CsrMatrix by_user, by_item;
  RowExchange fetch_items, fetch_users;
};

ExchangePlans PlanExchanges(const Comm& comm, const DistributedOptions& options,
                            const Partitioned& data) {
  ExchangePlans plans;
  std::vector<int32_t> needed_items, needed_users;
  if (options.exchange == FactorExchange::kBlock) {
    std::tie(needed_items, plans.by_user) = distributed_internal::Compact(data.seen);
    std::tie(needed_users, plans.by_item) = distributed_internal::Compact(data.by_item);
  } else {
    plans.by_user = data.seen;
    plans.by_item = data.by_item;
  }
  plans.fetch_items = RowExchange::Plan(comm, options.exchange, needed_items, data.items);
  plans.fetch_users = RowExchange::Plan(comm, options.exchange, needed_users, data.users);
  return plans;
}

// The single-process trainer's initial factors of this process's rows (seeded by external ID).
Factors InitialFactors(const AlsOptions& o, const Partitioned& data, int me) {
  Factors f;
  std::vector<uint64_t> keys(data.users.ids.size());
  for (size_t r = 0; r < keys.size(); ++r) keys[r] = AlsRowKey(data.users.ids[r]);
  AlsInitialFactors(keys, AlsSide::kUsers, o, &f.users);
  keys.resize(data.items.ids.size());
  for (size_t r = 0; r < keys.size(); ++r) keys[r] = AlsRowKey(data.items.ids[r]);
  AlsInitialFactors(keys, AlsSide::kItems, o, &f.items);
  if (o.feedback == FeedbackKind::kExplicit) {
    f.user_bias = Eigen::VectorXf::Zero(data.users.count(me));
    f.item_bias = Eigen::VectorXf::Zero(data.items.count(me));
  }
  return f;
}

// The iterations of one process: the half-steps, with the fetched rows of the other side.
class Iterator {
 public:
  Iterator(const Comm& comm, const DistributedOptions& options, const Partitioned& data,
           const ExchangePlans& plans, Factors* factors)
      : comm_(comm), o_(options.als), data_(data), plans_(plans),
        f_(*factors), explicit_(o_.feedback == FeedbackKind::kExplicit),
        reg_(AlsRegularization(o_)) {}

  // Iteration `it` (1-based). Internal if the factors stop being finite.
  absl::StatusOr<DistributedIterationStats> Run(int it, int64_t train_interactions) {
    const auto start = SteadyClock::now();
    exchange_seconds_ = 0;
    bytes_ = 0;
    // Users against items, then items against the new users.
    HalfStep(plans_.fetch_items, f_.items, f_.item_bias, plans_.by_user, &f_.users, &f_.user_bias);
    HalfStep(plans_.fetch_users, f_.users, f_.user_bias, plans_.by_item, &f_.items, &f_.item_bias);
    DistributedIterationStats stats;
    stats.iteration = it;
    if (explicit_) stats.train_rmse = TrainRmse(train_interactions);
    const int32_t finite = comm_.Min(int32_t{f_.users.allFinite() && f_.items.allFinite()});
    if (finite == 0) {
      return absl::InternalError(absl::StrCat("ALS diverged at iteration ", it,
                                              " (non-finite factors); raise regularization"));
    }
    stats.seconds = comm_.Max(SecondsSince(start));
    stats.exchange_seconds = comm_.Max(exchange_seconds_);
    const std::vector<int64_t> sent = comm_.AllGather(bytes_);
    stats.max_bytes_sent = *std::max_element(sent.begin(), sent.end());
    stats.mean_bytes_sent =
        static_cast<double>(std::accumulate(sent.begin(), sent.end(), int64_t{0})) /
        comm_.size();
    return stats;
  }

 private:
  template <typename F>
  void Timed(F&& f) {
    const auto t = SteadyClock::now();
    f();
    exchange_seconds_ += SecondsSince(t);
  }

  // One half-step: the rows of `m` against the other side's rows, fetched from `from`.
  void HalfStep(const RowExchange& fetch, const FactorMatrix& from,
                const Eigen::VectorXf& from_bias, const CsrMatrix& m, FactorMatrix* to,
                Eigen::VectorXf* to_bias) {
    Timed([&] {
      bytes_ += fetch.Fetch(comm_, from, explicit_ ? &from_bias : nullptr, &other_, &other_bias_);
    });
    if (explicit_) {
      AlsExplicitHalfStep(m, other_, other_bias_, data_.global_mean, o_, to, to_bias);
    } else {
      Eigen::MatrixXf gram;
      Timed([&] { gram = distributed_internal::GlobalGram(comm_, from, o_.factors, reg_); });
      AlsImplicitHalfStep(m, other_, gram, o_, to);
    }
  }

  // Training error where the item rows were just solved: other_ holds the current users.
  double TrainRmse(int64_t train_interactions) const {
    const CsrMatrix& by_item = plans_.by_item;
    const int32_t my_items = data_.items.count(comm_.rank());
    std::vector<double> per_item(static_cast<size_t>(my_items), 0.0);
    tbb::parallel_for(int32_t{0}, my_items, [&](int32_t i) {
      const auto cols = by_item.RowIndices(i);
      const auto vals = by_item.RowValues(i);
      double s = 0;
      for (size_t j = 0; j < cols.size(); ++j) {
        const double e = vals[j] - (data_.global_mean + other_bias_[cols[j]] + f_.item_bias[i] +
                                    other_.row(cols[j]).dot(f_.items.row(i)));
        s += e * e;
      }
      per_item[i] = s;
    });
    const double squared = std::accumulate(per_item.begin(), per_item.end(), 0.0);
    return std::sqrt(comm_.Sum(squared) / static_cast<double>(train_interactions));
  }

  const Comm& comm_;
  const AlsOptions& o_;
  const Partitioned& data_;
  const ExchangePlans& plans_;
  Factors& f_;
  const bool explicit_;
  const float reg_;
  FactorMatrix other_;  // the fetched rows of the other side
  Eigen::VectorXf other_bias_;
  double exchange_seconds_ = 0;  // of the running iteration
  int64_t bytes_ = 0;            // sent in the running iteration
};

// Runs the iterations from `factors`, recording them in `result`.
absl::Status Iterate(const Comm& comm, const DistributedOptions& options,
                     const Partitioned& data, const ExchangePlans& plans,
                     const DistributedIterationCallback& on_iteration, Factors* factors,
                     DistributedTrainResult* result) {
  Iterator iterator(comm, options, data, plans, factors);
  const auto train_start = SteadyClock::now();
  for (int it = 1; it <= options.als.iterations; ++it) {
    if (options.kill_rank >= 0 && comm.rank() == options.kill_rank &&
        it == options.kill_at_iteration) {
      std::raise(SIGKILL);
    }
    ASSIGN_OR_RETURN(const DistributedIterationStats stats,
                     iterator.Run(it, result->train_interactions));
    result->iterations.push_back(stats);
    if (on_iteration) on_iteration(stats);
  }
  result->train_seconds = comm.Max(SecondsSince(train_start));
  return absl::OkStatus();
}

// The model's item side, which every process needs to rank the whole catalogue (root < 0) or
// process 0 (root 0) to write it.
Catalogue GatherCatalogue(const Comm& comm, const DistributedOptions& options,
                          const Factors& factors, const Partitioned& data, int root) {
  Catalogue catalogue;
  catalogue.item_factors = GatherRows(comm, factors.items, options.als.factors, root);
  if (options.als.feedback == FeedbackKind::kExplicit) {
    catalogue.item_bias = GatherVector(comm, factors.item_bias, root);
  }
  catalogue.popularity = GatherVector(comm, data.popularity, root);
  return catalogue;
}

// Process 0 assembles the model into result->model (moving the catalogue there); the seen
// matrix only with gather_seen.
void AssembleModel(const Comm& comm, const DistributedOptions& options, const Partitioned& data,
                   const Factors& factors, Catalogue* catalogue, DistributedTrainResult* result) {
  const bool explicit_feedback = options.als.feedback == FeedbackKind::kExplicit;
  std::vector<std::string> user_ids = comm.GatherStrings(data.users.ids, 0);
  std::vector<std::string> item_ids = comm.GatherStrings(data.items.ids, 0);
  FactorMatrix all_user_factors = GatherRows(comm, factors.users, options.als.factors, 0);
  Eigen::VectorXf all_user_bias;
  if (explicit_feedback) all_user_bias = GatherVector(comm, factors.user_bias, 0);
  std::vector<int64_t> all_sizes;
  std::vector<int32_t> all_indices;
  std::vector<float> all_values;
  if (options.gather_seen) {
    const int32_t my_users = data.users.count(comm.rank());
    std::vector<int64_t> row_sizes(static_cast<size_t>(my_users));
    for (int32_t u = 0; u < my_users; ++u) row_sizes[u] = data.seen.RowSize(u);
    all_sizes = comm.Gather(row_sizes, 0);
    all_indices = comm.Gather(data.seen.indices(), 0);
    all_values = comm.Gather(data.seen.values(), 0);
  }
  if (comm.rank() != 0) return;
  FactorModel& m = result->model;
  m.params = AlsModelParams(options.als);
  m.params.popularity_half_life_days = options.popularity.half_life_days;
  m.users = IdMap::FromExternals(std::move(user_ids));
  m.items = IdMap::FromExternals(std::move(item_ids));
  m.user_factors = std::move(all_user_factors);
  m.item_factors = std::move(catalogue->item_factors);
  m.user_bias = std::move(all_user_bias);
  m.item_bias = std::move(catalogue->item_bias);
  m.global_mean = data.global_mean;
  m.min_value = data.lo;
  m.max_value = data.hi;
  m.item_popularity = std::move(catalogue->popularity);
  if (options.gather_seen) {
    std::vector<int64_t> indptr(all_sizes.size() + 1, 0);
    std::partial_sum(all_sizes.begin(), all_sizes.end(), indptr.begin() + 1);
    m.seen = CsrMatrix::FromArrays(data.users.total(), data.items.total(), std::move(indptr),
                                   std::move(all_indices), std::move(all_values));
  } else {
    m.seen = CsrMatrix();  // 0 x 0: SaveDistributedModel streams it
  }
}

}  // namespace

absl::StatusOr<FactorExchange> ParseFactorExchange(std::string_view s) {
  if (s == "block") return FactorExchange::kBlock;
  if (s == "allgather") return FactorExchange::kAllgather;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown exchange '", std::string(s), "' (expected block or allgather)"));
}

std::string_view ToString(FactorExchange e) {
  return e == FactorExchange::kBlock ? "block" : "allgather";
}

absl::StatusOr<DistributedTrainResult> TrainDistributed(
    MPI_Comm mpi_comm, const DistributedOptions& options,
    const DistributedIterationCallback& on_iteration) {
  const Comm comm(mpi_comm, std::clamp<int64_t>(options.max_message_elements, 1, INT_MAX));
  DistributedTrainResult result;
  result.ranks = comm.size();
  const auto read_start = SteadyClock::now();
  RETURN_IF_ERROR(comm.Agree(ValidateDistributedOptions(options)));

  // Each process reads its byte range of the file; the IDs are numbered and the interactions
  // go to the owners of their users and items.
  ReadStats read_stats;
  ASSIGN_OR_RETURN(Interactions local,
                   distributed_internal::ReadTraining(comm, options, &read_stats, &result));
  const bool has_timestamps = comm.Max(int32_t{local.has_timestamps ? 1 : 0}) != 0;
  if (options.popularity.half_life_days > 0 && !has_timestamps) {
    return absl::InvalidArgumentError(absl::StrCat(
        options.data_path, ": popularity decay needs timestamps, and the file has none"));
  }
  ASSIGN_OR_RETURN(Partitioned data,
                   distributed_internal::Partition(comm, options, std::move(local),
                                                   read_stats.duplicates_merged, &result));
  const ExchangePlans plans = PlanExchanges(comm, options, data);
  result.read_seconds = comm.Max(SecondsSince(read_start));

  // The iterations, from the single-process trainer's initial factors.
  Factors factors = InitialFactors(options.als, data, comm.rank());
  RETURN_IF_ERROR(Iterate(comm, options, data, plans, on_iteration, &factors, &result));

  const bool evaluate = !options.test_path.empty();
  Catalogue catalogue = GatherCatalogue(comm, options, factors, data, evaluate ? -1 : 0);
  if (evaluate) {
    RETURN_IF_ERROR(distributed_internal::EvaluateDistributed(comm, options, &data, &factors,
                                                              &catalogue, &result));
  }
  AssembleModel(comm, options, data, factors, &catalogue, &result);
  result.local_seen = std::move(data.seen);
  result.split_transfers = comm.split_transfers();
  return result;
}

}  // namespace recloop
