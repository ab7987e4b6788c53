// The factor exchange of a half-step of the distributed trainer (internal to
// training/distributed_*.cc): which rows of the other side reach each process (Spark's in/out
// blocks, or the allgather baseline), and the global Gram matrix of implicit ALS. The methods
// taking a Comm are collectives (distributed_comm.h).
#ifndef RECLOOP_TRAINING_DISTRIBUTED_EXCHANGE_H_
#define RECLOOP_TRAINING_DISTRIBUTED_EXCHANGE_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "engine/csr_matrix.h"
#include "engine/factor_model.h"
#include "training/distributed_als.h"
#include "training/distributed_comm.h"
#include "training/distributed_partition.h"

namespace recloop::distributed_internal {

// Immutable after Plan: Fetch may be called once per iteration.
class RowExchange {
 public:
  // `needed`: the sorted global indices of the other side that this process's rows touch;
  // `other`: the other side's partition. Collective.
  static RowExchange Plan(const Comm& comm, FactorExchange mode, const std::vector<int32_t>& needed,
                          const Side& other);

  // The rows this process receives: needed.size() (block) or the whole other side (allgather).
  int64_t rows() const { return needed_; }

  // Sends this process's rows of the other side (`own`, and `own_bias` if not null) to those
  // that need them; fills `out` (rows() x K) and `out_bias`. Returns the bytes this process
  // sent to others. Collective.
  int64_t Fetch(const Comm& comm, const FactorMatrix& own, const Eigen::VectorXf* own_bias,
                FactorMatrix* out, Eigen::VectorXf* out_bias) const;

 private:
  FactorExchange mode_ = FactorExchange::kBlock;
  std::vector<int64_t> recv_rows_;               // per source rank
  std::vector<std::vector<int32_t>> send_rows_;  // per destination: own local rows, in order
  int32_t own_rows_ = 0;
  int64_t needed_ = 0;
};

// The sorted distinct columns of `m`, and `m` with its columns renumbered into that list.
std::pair<std::vector<int32_t>, CsrMatrix> Compact(const CsrMatrix& m);

// YᵀY + reg·I over every process's rows of one side. Summed in double across processes.
Eigen::MatrixXf GlobalGram(const Comm& comm, const FactorMatrix& own, int k, float reg);

}  // namespace recloop::distributed_internal

#endif  // RECLOOP_TRAINING_DISTRIBUTED_EXCHANGE_H_
