// Evaluation on a held-out file across the processes (distributed_eval.h).
#include "training/distributed_eval.h"

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/status_macros.h"
#include "training/distributed_read.h"

namespace recloop::distributed_internal {
namespace {

// This process's range of the test file, its rows at the owners of their users (by hash, known
// to the model or not), merged across ranges.
absl::StatusOr<std::vector<TestRow>> ReadTestRows(const Comm& comm,
                                                  const DistributedOptions& options,
                                                  const Partitioned& data) {
  const int ranks = comm.size();
  const int me = comm.rank();
  ReadStats test_stats;
  absl::StatusOr<Interactions> test = ReadRange(comm, options.test_path, options.read, &test_stats);
  RETURN_IF_ERROR(comm.Agree(test.status()));
  const std::vector<int32_t> test_user = LookUpIds(comm, test->users, data.users);
  const std::vector<int32_t> test_item = LookUpIds(comm, test->items, data.items);
  std::vector<TestRow> rows;
  {
    std::vector<std::vector<TestRow>> send(ranks);
    for (int64_t r = 0; r < test->size(); ++r) {
      const std::string& u = test->users.External(test->user[r]);
      TestRow row;
      row.user_key = AlsRowKey(u);
      row.item_key = AlsRowKey(test->items.External(test->item[r]));
      row.user = test_user[test->user[r]];
      row.item = test_item[test->item[r]];
      row.value = test->value[r];
      row.source = me;
      row.timestamp = test->timestamp[r];
      send[HashOwner(u, ranks)].push_back(row);
    }
    test = Interactions();
    rows = comm.AllToAll(send);
  }
  absl::StatusOr<int64_t> test_merged = MergeDuplicates(
      &rows, options.read.duplicates,
      [](const TestRow& r) { return std::make_pair(r.user_key, r.item_key); },
      [&](const TestRow&) {
        return absl::StrCat(options.test_path,
                            ": duplicate interaction (one user and item) in two ranks' byte "
                            "ranges");
      });
  RETURN_IF_ERROR(comm.Agree(test_merged.status()));
  return rows;
}

// The test rows with the names of the models below: global indices, or "?key" for an ID the
// model does not know.
Interactions PartTest(const std::vector<TestRow>& rows) {
  Interactions part_test;
  for (const TestRow& r : rows) {
    const int32_t u = part_test.users.GetOrAdd(
        r.user >= 0 ? std::to_string(r.user) : absl::StrCat("?", r.user_key));
    const int32_t i = part_test.items.GetOrAdd(
        r.item >= 0 ? std::to_string(r.item) : absl::StrCat("?", r.item_key));
    part_test.Add(u, i, r.value, r.timestamp);
  }
  return part_test;
}

// `model` (this process's users against the whole catalogue) on `part_test`, reduced over all
// processes.
absl::StatusOr<EvalResult> EvaluatePart(const Comm& comm, const DistributedOptions& options,
                                        const Interactions& part_test, const FactorModel& model) {
  EvalSums sums;
  absl::Status status;
  if (!part_test.empty()) {
    absl::StatusOr<EvalSums> s = EvaluateSums(model, part_test, options.eval);
    if (s.ok()) {
      sums = std::move(*s);
    } else {
      status = s.status();
    }
  } else {
    sums.k = options.eval.k;
    sums.rating_metrics = model.params.feedback == FeedbackKind::kExplicit &&
                          model.params.algorithm != Algorithm::kPopular;
    sums.items = model.num_items();
    sums.recommended.assign(static_cast<size_t>(model.num_items()), 0);
  }
  RETURN_IF_ERROR(comm.Agree(status));
  ReduceSums(comm, &sums);
  return FinishEvaluation(sums);
}

}  // namespace

// Adds every process's sums into `sums` (on every process).
void ReduceSums(const Comm& comm, EvalSums* sums) {
  double d[8] = {sums->squared_error, sums->absolute_error, sums->precision, sums->recall,
                 sums->ndcg,          sums->map,            sums->hit_rate,  sums->auc};
  comm.SumInPlace(d, 8);
  sums->squared_error = d[0];
  sums->absolute_error = d[1];
  sums->precision = d[2];
  sums->recall = d[3];
  sums->ndcg = d[4];
  sums->map = d[5];
  sums->hit_rate = d[6];
  sums->auc = d[7];
  int64_t n[4] = {sums->users, sums->test_interactions, sums->unknown_user_rows,
                  sums->unknown_item_rows};
  comm.SumInPlace(n, 4);
  sums->users = n[0];
  sums->test_interactions = n[1];
  sums->unknown_user_rows = n[2];
  sums->unknown_item_rows = n[3];
  MPI_Allreduce(MPI_IN_PLACE, sums->recommended.data(),
                Comm::CheckedInt(static_cast<int64_t>(sums->recommended.size())), MPI_UINT8_T,
                MPI_BOR, comm.get());
}

absl::Status EvaluateDistributed(const Comm& comm, const DistributedOptions& options,
                                 Partitioned* data, Factors* factors, Catalogue* catalogue,
                                 DistributedTrainResult* result) {
  const int me = comm.rank();
  ASSIGN_OR_RETURN(const std::vector<TestRow> rows, ReadTestRows(comm, options, *data));
  result->test_interactions = comm.Sum(static_cast<int64_t>(rows.size()));
  if (result->test_interactions == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.test_path, ": no interactions (the file has no data rows)"));
  }

  // Models of this process's users against the whole catalogue, matched to the test rows by
  // names of the global indices.
  const int32_t num_items = data->items.total();
  const int32_t my_users = data->users.count(me), user_base = data->users.begin(me);
  std::vector<std::string> item_names(static_cast<size_t>(num_items));
  for (int32_t i = 0; i < num_items; ++i) item_names[i] = std::to_string(i);
  std::vector<std::string> user_names(static_cast<size_t>(my_users));
  for (int32_t u = 0; u < my_users; ++u) user_names[u] = std::to_string(user_base + u);
  FactorModel part;
  part.params = AlsModelParams(options.als);
  part.users = IdMap::FromExternals(user_names);
  part.items = IdMap::FromExternals(item_names);
  part.user_factors = std::move(factors->users);
  part.item_factors = std::move(catalogue->item_factors);
  part.user_bias = factors->user_bias;
  part.item_bias = catalogue->item_bias;
  part.global_mean = data->global_mean;
  part.min_value = data->lo;
  part.max_value = data->hi;
  part.item_popularity = catalogue->popularity;
  part.seen = std::move(data->seen);
  const Interactions part_test = PartTest(rows);
  ASSIGN_OR_RETURN(result->eval, EvaluatePart(comm, options, part_test, part));
  // The popularity baseline of `recloop train`: plain counts, whatever the model's popularity.
  FactorModel popular;
  popular.params.algorithm = Algorithm::kPopular;
  popular.params.feedback = options.als.feedback;
  popular.users = std::move(part.users);
  popular.items = std::move(part.items);
  popular.item_popularity = GatherVector(comm, data->counts, -1);
  popular.global_mean = data->mean_value;
  popular.min_value = data->lo;
  popular.max_value = data->hi;
  popular.seen = std::move(part.seen);
  ASSIGN_OR_RETURN(result->baseline, EvaluatePart(comm, options, part_test, popular));
  // Lent to the models above; back for the model's assembly.
  catalogue->item_factors = std::move(part.item_factors);
  factors->users = std::move(part.user_factors);
  data->seen = std::move(popular.seen);
  return absl::OkStatus();
}

}  // namespace recloop::distributed_internal
