// Error handling for all of Loom: absl::Status values, never exceptions across modules.
#ifndef LOOM_COMMON_STATUS_H_
#define LOOM_COMMON_STATUS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

#define LOOM_CONCAT_INNER_(a, b) a##b
#define LOOM_CONCAT_(a, b) LOOM_CONCAT_INNER_(a, b)

// Returns from the enclosing function when `expr` yields a non-OK status.
#define LOOM_RETURN_IF_ERROR(expr)                       \
  do {                                                   \
    ::absl::Status loom_status_ = (expr);                \
    if (!loom_status_.ok()) return loom_status_;         \
  } while (0)

// `lhs = value` of a StatusOr expression, or returns its error.
#define LOOM_ASSIGN_OR_RETURN(lhs, expr) \
  LOOM_ASSIGN_OR_RETURN_IMPL_(LOOM_CONCAT_(loom_statusor_, __LINE__), lhs, expr)
#define LOOM_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(tmp).value()

#endif  // LOOM_COMMON_STATUS_H_
