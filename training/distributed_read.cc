// Sharded reading and the partition (distributed_read.h).
#include "training/distributed_read.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/status_macros.h"
#include "tbb/global_control.h"
#include "tbb/parallel_sort.h"
#include "tbb/task_arena.h"

namespace recloop::distributed_internal {
namespace {

// Interactions to the owners of their users, merged across ranges.
absl::StatusOr<std::vector<Row>> ShuffleToUserOwners(const Comm& comm,
                                                     const DistributedOptions& options,
                                                     Interactions local, Partitioned* data,
                                                     int64_t* merged) {
  const int ranks = comm.size();
  const int me = comm.rank();
  Side& users = data->users;
  ASSIGN_OR_RETURN(const std::vector<int32_t> user_of,
                   NumberIds(comm, local.users, &users, "user"));
  ASSIGN_OR_RETURN(const std::vector<int32_t> item_of,
                   NumberIds(comm, local.items, &data->items, "item"));
  const int32_t user_base = users.begin(me);
  std::vector<Row> by_user_rows;
  {
    std::vector<std::vector<Row>> send(ranks);
    for (int64_t r = 0; r < local.size(); ++r) {
      Row row{user_of[local.user[r]], item_of[local.item[r]], local.value[r], me,
              local.timestamp[r]};
      send[users.OwnerOf(row.user)].push_back(row);
    }
    local = Interactions();
    by_user_rows = comm.AllToAll(send);
  }
  absl::StatusOr<int64_t> cross = MergeDuplicates(
      &by_user_rows, options.read.duplicates,
      [](const Row& r) { return (int64_t{r.user} << 32) | static_cast<uint32_t>(r.item); },
      [&](const Row& r) {
        return absl::StrCat(options.data_path, ": duplicate interaction of user '",
                            users.ids[r.user - user_base], "' with item number ", r.item,
                            " in two ranks' byte ranges");
      });
  RETURN_IF_ERROR(comm.Agree(cross.status()));
  *merged += *cross;
  return by_user_rows;
}

// The value range and mean over every process's rows; returns the latest timestamp.
int64_t ValueStats(const Comm& comm, const DistributedOptions& options,
                   const std::vector<Row>& rows, int64_t interactions, Partitioned* data) {
  double value_sum = 0;
  float lo = std::numeric_limits<float>::infinity(), hi = -lo;
  int64_t latest = std::numeric_limits<int64_t>::min();
  for (const Row& r : rows) {
    value_sum += r.value;
    lo = std::min(lo, r.value);
    hi = std::max(hi, r.value);
    latest = std::max(latest, r.timestamp);
  }
  value_sum = comm.Sum(value_sum);
  data->lo = comm.Min(lo);
  data->hi = comm.Max(hi);
  latest = comm.Max(latest);
  data->mean_value = static_cast<float>(value_sum / static_cast<double>(interactions));
  // As TrainAls sets it.
  data->global_mean = options.als.feedback == FeedbackKind::kExplicit ? data->mean_value : 0.0f;
  return latest;
}

// The interactions of this process's users (freed here) at the owners of their items; the
// by-item matrix and the popularity of this process's items.
void ShuffleToItemOwners(const Comm& comm, const DistributedOptions& options,
                         std::vector<Row> by_user_rows, int64_t latest, Partitioned* data) {
  const int ranks = comm.size();
  const int me = comm.rank();
  const int32_t my_items = data->items.count(me), item_base = data->items.begin(me);
  std::vector<Row> by_item_rows;
  {
    std::vector<std::vector<Row>> send(ranks);
    for (const Row& r : by_user_rows) send[data->items.OwnerOf(r.item)].push_back(r);
    by_user_rows = {};
    by_item_rows = comm.AllToAll(send);
  }
  tbb::parallel_sort(by_item_rows.begin(), by_item_rows.end(), [](const Row& a, const Row& b) {
    return a.item != b.item ? a.item < b.item : a.user < b.user;
  });
  data->by_item = ToCsr(
      by_item_rows, item_base, my_items, data->users.total(), [](const Row& r) { return r.item; },
      [](const Row& r) { return r.user; });
  // Popularity of this process's items: plain counts (the baseline's scores), and the model's.
  Eigen::VectorXf& counts = data->counts;
  Eigen::VectorXf& popularity = data->popularity;
  counts.resize(my_items);
  popularity.resize(my_items);
  for (int32_t i = 0; i < my_items; ++i) counts[i] = static_cast<float>(data->by_item.RowSize(i));
  if (options.popularity.half_life_days > 0) {
    popularity.setZero();
    const double seconds = options.popularity.half_life_days * 86400.0;
    for (const Row& r : by_item_rows) {
      popularity[r.item - item_base] +=
          static_cast<float>(std::exp2(-static_cast<double>(latest - r.timestamp) / seconds));
    }
  } else {
    popularity = counts;
  }
}

}  // namespace

absl::StatusOr<Interactions> ReadRange(const Comm& comm, const std::string& path,
                                       const ReadOptions& options, ReadStats* stats) {
  const int ranks = comm.size();
  const int me = comm.rank();
  std::error_code ec;
  const auto size = std::filesystem::file_size(path, ec);
  if (ec) return absl::NotFoundError(absl::StrCat(path, ": ", ec.message()));
  const int64_t bytes = static_cast<int64_t>(size);
  FileRange range;
  range.begin = bytes / ranks * me + std::min<int64_t>(me, bytes % ranks);
  range.end = range.begin + bytes / ranks + (me < bytes % ranks ? 1 : 0);
  return ReadInteractionsRange(path, options, range, stats);
}

absl::StatusOr<Interactions> ReadTraining(const Comm& comm, const DistributedOptions& options,
                                          ReadStats* stats, DistributedTrainResult* result) {
  absl::StatusOr<Interactions> local = ReadRange(comm, options.data_path, options.read, stats);
  RETURN_IF_ERROR(comm.Agree(local.status()));
  result->rows_read = comm.Sum(stats->rows_read);
  result->rows_skipped = comm.Sum(stats->rows_skipped);
  // The lowest rank's first skipped row, as a whole read would name the file's first.
  const std::vector<int32_t> has =
      comm.AllGather(int32_t{stats->first_skipped.empty() ? 0 : 1});
  const auto first = std::find(has.begin(), has.end(), 1);
  if (first != has.end()) {
    const int r = static_cast<int>(first - has.begin());
    std::string s = stats->first_skipped;
    comm.Broadcast(&s, r);
    result->first_skipped = absl::StrCat("rank ", r, ": ", s);
  }
  return local;
}

absl::StatusOr<Partitioned> Partition(const Comm& comm, const DistributedOptions& options,
                                      Interactions local, int64_t merged_locally,
                                      DistributedTrainResult* result) {
  const int me = comm.rank();
  Partitioned data;
  int64_t merged = merged_locally;
  ASSIGN_OR_RETURN(std::vector<Row> by_user_rows,
                   ShuffleToUserOwners(comm, options, std::move(local), &data, &merged));
  result->duplicates_merged = comm.Sum(merged);
  result->train_interactions = comm.Sum(static_cast<int64_t>(by_user_rows.size()));
  result->users = data.users.total();
  result->items = data.items.total();
  if (result->train_interactions == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.data_path, ": no interactions (the file has no data rows)"));
  }
  const int64_t latest =
      ValueStats(comm, options, by_user_rows, result->train_interactions, &data);
  // This process's users' rows (global item columns: the seen matrix), and the same
  // interactions at the owners of their items.
  const int32_t my_users = data.users.count(me);
  data.seen = ToCsr(
      by_user_rows, data.users.begin(me), my_users, data.items.total(),
      [](const Row& r) { return r.user; }, [](const Row& r) { return r.item; });
  ShuffleToItemOwners(comm, options, std::move(by_user_rows), latest, &data);
  result->rank_users = comm.AllGather(int64_t{my_users});
  result->rank_items = comm.AllGather(int64_t{data.items.count(me)});
  result->rank_interactions = comm.AllGather(data.seen.nnz());
  // The arena's concurrency follows the CPU affinity; --threads caps it through global_control.
  result->rank_threads = comm.AllGather(static_cast<int64_t>(std::min<size_t>(
      static_cast<size_t>(tbb::this_task_arena::max_concurrency()),
      tbb::global_control::active_value(tbb::global_control::max_allowed_parallelism))));
  return data;
}

}  // namespace recloop::distributed_internal
