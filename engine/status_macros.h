// Propagation helpers for absl::Status / absl::StatusOr, the error type of every fallible
// recloop function (no exception crosses a recloop header).
#ifndef RECLOOP_ENGINE_STATUS_MACROS_H_
#define RECLOOP_ENGINE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define RECLOOP_CONCAT_INNER_(a, b) a##b
#define RECLOOP_CONCAT_(a, b) RECLOOP_CONCAT_INNER_(a, b)

// RETURN_IF_ERROR(expr): evaluates an absl::Status expression and returns it if not ok.
#define RETURN_IF_ERROR(expr)                  \
  do {                                         \
    ::absl::Status _recloop_status = (expr);   \
    if (!_recloop_status.ok()) return _recloop_status; \
  } while (0)

// ASSIGN_OR_RETURN(lhs, expr): evaluates an absl::StatusOr<T> expression; on error returns its
// status, otherwise moves the value into lhs (which may be a declaration).
#define ASSIGN_OR_RETURN(lhs, expr) \
  RECLOOP_ASSIGN_OR_RETURN_IMPL_(RECLOOP_CONCAT_(_recloop_statusor_, __LINE__), lhs, expr)
#define RECLOOP_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return std::move(tmp).status();      \
  lhs = std::move(tmp).value()

#endif  // RECLOOP_ENGINE_STATUS_MACROS_H_
