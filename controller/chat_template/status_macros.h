// Status helpers local to the chat-template module (it depends only on Abseil, nlohmann_json and
// the standard library, so it does not use loom_common's).
#ifndef LOOM_CONTROLLER_CHAT_TEMPLATE_STATUS_MACROS_H_
#define LOOM_CONTROLLER_CHAT_TEMPLATE_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define CT_CONCAT_INNER(a, b) a##b
#define CT_CONCAT(a, b) CT_CONCAT_INNER(a, b)

#define CT_RETURN_IF_ERROR(expr)                 \
  do {                                           \
    ::absl::Status ct_status_ = (expr);          \
    if (!ct_status_.ok()) return ct_status_;     \
  } while (0)

#define CT_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                             \
  if (!tmp.ok()) return tmp.status();            \
  lhs = std::move(*tmp)

#define CT_ASSIGN_OR_RETURN(lhs, expr) \
  CT_ASSIGN_OR_RETURN_IMPL(CT_CONCAT(ct_statusor_, __LINE__), lhs, expr)

#endif  // LOOM_CONTROLLER_CHAT_TEMPLATE_STATUS_MACROS_H_
