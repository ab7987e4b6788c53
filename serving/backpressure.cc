#include "serving/backpressure.h"

namespace recloop {

absl::Status ValidateBackpressure(const BackpressureOptions& options) {
  if (options.max_fold_backlog < 0) {
    return absl::InvalidArgumentError("max_fold_backlog must be >= 0 (0: no bound)");
  }
  if (options.max_write_queue < 0) {
    return absl::InvalidArgumentError("max_write_queue must be >= 0 (0: no bound)");
  }
  if (options.retry_after_seconds < 1 || options.retry_after_seconds > 3600) {
    return absl::InvalidArgumentError("backpressure retry_after_seconds must be in [1, 3600]");
  }
  return absl::OkStatus();
}

std::optional<Overload> CheckBackpressure(const BackpressureOptions& options, int64_t fold_backlog,
                                          int64_t write_queue) {
  if (options.max_fold_backlog > 0 && fold_backlog >= options.max_fold_backlog) {
    return Overload{"fold_backlog", fold_backlog, options.max_fold_backlog};
  }
  if (options.max_write_queue > 0 && write_queue >= options.max_write_queue) {
    return Overload{"write_queue", write_queue, options.max_write_queue};
  }
  return std::nullopt;
}

}  // namespace recloop
