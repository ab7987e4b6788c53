// `recloop train --distributed` in a build without the MPI trainer (RECLOOP_DISTRIBUTED=OFF).
#include "absl/status/status.h"
#include "tools/cli_common.h"
#include "tools/train_command.h"

namespace recloop {

int RunDistributedTrain(const TrainCommand&) {
  return Fail(absl::UnimplementedError(
      "--distributed: this recloop was built without the distributed trainer; rebuild with "
      "OpenMPI installed (openmpi-bin, libopenmpi-dev) and cmake -DRECLOOP_DISTRIBUTED=ON"));
}

}  // namespace recloop
