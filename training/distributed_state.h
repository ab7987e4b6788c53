// What one process of the distributed trainer holds between the phases of TrainDistributed
// (internal to training/distributed_*.cc): its share of the data after the shuffles, its rows
// of the factors, and the gathered catalogue side. Plain data; the gathers are collectives
// (distributed_comm.h).
#ifndef RECLOOP_TRAINING_DISTRIBUTED_STATE_H_
#define RECLOOP_TRAINING_DISTRIBUTED_STATE_H_

#include <vector>

#include "engine/csr_matrix.h"
#include "engine/factor_model.h"
#include "training/distributed_comm.h"
#include "training/distributed_partition.h"

namespace recloop::distributed_internal {

// This process's share of the training data, after the shuffles to the owners.
struct Partitioned {
  Side users, items;
  CsrMatrix seen;                  // this process's users' rows, global item columns
  CsrMatrix by_item;               // this process's items' rows, global user columns
  Eigen::VectorXf counts;          // per own item: its interactions (the baseline's scores)
  Eigen::VectorXf popularity;      // per own item: the model's popularity
  float lo = 0, hi = 0;            // the value range, over all processes
  float mean_value = 0;            // the mean value, over all processes
  float global_mean = 0;           // the model's (explicit ALS: mean_value, else 0)
};

// This process's rows of the factors (and biases, explicit ALS only).
struct Factors {
  FactorMatrix users, items;
  Eigen::VectorXf user_bias, item_bias;
};

// The item side of the whole model, gathered (on every process, or on process 0 only).
struct Catalogue {
  FactorMatrix item_factors;
  Eigen::VectorXf item_bias;
  Eigen::VectorXf popularity;
};

// Every process's rows of `own` (K = k columns), in rank order, on every process (root < 0) or
// on the root only (empty elsewhere).
inline FactorMatrix GatherRows(const Comm& comm, const FactorMatrix& own, int k, int root) {
  std::vector<float> flat(own.data(), own.data() + own.size());
  std::vector<float> all = comm.Gather(flat, root);
  FactorMatrix m;
  if (!all.empty() || root < 0 || comm.rank() == root) {
    m = Eigen::Map<FactorMatrix>(all.data(), static_cast<Eigen::Index>(all.size() / k), k);
  }
  return m;
}

// Every process's entries of `own`, in rank order, as GatherRows.
inline Eigen::VectorXf GatherVector(const Comm& comm, const Eigen::VectorXf& own, int root) {
  std::vector<float> all =
      comm.Gather(std::vector<float>(own.data(), own.data() + own.size()), root);
  return Eigen::VectorXf(
      Eigen::Map<Eigen::VectorXf>(all.data(), static_cast<Eigen::Index>(all.size())));
}

}  // namespace recloop::distributed_internal

#endif  // RECLOOP_TRAINING_DISTRIBUTED_STATE_H_
