// Result<T>: a value or an Error, and nothing is dropped silently ([[nodiscard]]).
#pragma once

#include <cassert>
#include <optional>
#include <utility>
#include <variant>

#include "common/error.h"

namespace nq {

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit by design
  Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT

  bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }

  T& value() & {
    assert(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    assert(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    assert(ok());
    return std::get<0>(std::move(v_));
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

  const Error& error() const& {
    assert(!ok());
    return std::get<1>(v_);
  }
  Error&& error() && {
    assert(!ok());
    return std::get<1>(std::move(v_));
  }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : e_(std::move(error)) {}  // NOLINT: implicit by design

  bool ok() const noexcept { return !e_.has_value(); }
  explicit operator bool() const noexcept { return ok(); }
  const Error& error() const& {
    assert(!ok());
    return *e_;
  }
  Error&& error() && {
    assert(!ok());
    return std::move(*e_);
  }

 private:
  std::optional<Error> e_;
};

using Status = Result<void>;

inline Status ok() {
  return {};
}

}  // namespace nq

#define NQ_CONCAT_INNER_(a, b) a##b
#define NQ_CONCAT_(a, b) NQ_CONCAT_INNER_(a, b)

// Returns the error of a Result<...> expression from the enclosing function.
#define NQ_TRY(expr)                                         \
  do {                                                       \
    if (auto nq_try_result_ = (expr); !nq_try_result_.ok())  \
      return ::nq::Error(std::move(nq_try_result_).error()); \
  } while (0)

// `lhs = value of expr`, or return its error. lhs may be a declaration.
#define NQ_ASSIGN_OR_RETURN(lhs, expr) \
  NQ_ASSIGN_OR_RETURN_IMPL_(NQ_CONCAT_(nq_assign_result_, __LINE__), lhs, expr)
#define NQ_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr)            \
  auto tmp = (expr);                                         \
  if (!tmp.ok()) return ::nq::Error(std::move(tmp).error()); \
  lhs = std::move(tmp).value()
