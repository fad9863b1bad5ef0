// Early returns for absl::Status and absl::StatusOr (abseil 20220623 has no
// macros of its own):
//
//   FETCHD_RETURN_IF_ERROR(expr);
//     Evaluates `expr` (an absl::Status or an absl::StatusOr<T>) once; when
//     it is not OK, returns its status from the enclosing function.
//
//   FETCHD_ASSIGN_OR_RETURN(lhs, expr);
//     Evaluates `expr` (an absl::StatusOr<T>) once; when it is not OK,
//     returns its status from the enclosing function, else moves its value
//     into `lhs`, which either declares a variable (`auto x`, `Foo x`) or
//     names an existing one. `lhs` must not contain an unparenthesised
//     comma.
//
// The enclosing function returns absl::Status or any absl::StatusOr<U>.
// Both macros are statements of their own: FETCHD_ASSIGN_OR_RETURN expands
// to more than one statement, so it can't be the body of an unbraced if.
// The status is returned as is; where a caller adds context, write the
// `if (!s.ok())` by hand.
//
// Thread-safety: none needed (macros over local values).
#ifndef FETCHD_SERVICE_COMMON_STATUS_MACROS_H_
#define FETCHD_SERVICE_COMMON_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace fetchd::status_macros_internal {

inline absl::Status AsStatus(absl::Status status) { return status; }

template <typename T>
absl::Status AsStatus(absl::StatusOr<T>&& status_or) {
  return std::move(status_or).status();
}

template <typename T>
absl::Status AsStatus(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

}  // namespace fetchd::status_macros_internal

#define FETCHD_RETURN_IF_ERROR(expr)                      \
  do {                                                    \
    ::absl::Status fetchd_status_macros_status =          \
        ::fetchd::status_macros_internal::AsStatus(expr); \
    if (!fetchd_status_macros_status.ok()) {              \
      return fetchd_status_macros_status;                 \
    }                                                     \
  } while (false)

#define FETCHD_ASSIGN_OR_RETURN(lhs, expr)                                   \
  FETCHD_STATUS_MACROS_ASSIGN_OR_RETURN_(                                    \
      FETCHD_STATUS_MACROS_CONCAT_(fetchd_status_macros_or_, __LINE__), lhs, \
      expr)

// Implementation details.
#define FETCHD_STATUS_MACROS_CONCAT_INNER_(a, b) a##b
#define FETCHD_STATUS_MACROS_CONCAT_(a, b) \
  FETCHD_STATUS_MACROS_CONCAT_INNER_(a, b)
// `lhs` is not parenthesised: it may be a declaration.
// NOLINTBEGIN(bugprone-macro-parentheses)
#define FETCHD_STATUS_MACROS_ASSIGN_OR_RETURN_(status_or, lhs, expr) \
  auto status_or = (expr);                                           \
  if (!status_or.ok()) {                                             \
    return std::move(status_or).status();                            \
  }                                                                  \
  lhs = *std::move(status_or)
// NOLINTEND(bugprone-macro-parentheses)

#endif  // FETCHD_SERVICE_COMMON_STATUS_MACROS_H_
