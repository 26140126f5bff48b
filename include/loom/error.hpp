#pragma once
// loom::Error and its few subclasses. Every message says what was wrong,
// where (a file, a layer, an argument) and what was expected.
//
// Thread safety: plain exception types; copying and throwing from any thread is safe.

#include <cstdio>
#include <stdexcept>
#include <string>

namespace loom {

/// Base of every error loom throws on bad input or misuse.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A data file or data set is missing, malformed or inconsistent.
class DataError : public Error {
 public:
  using Error::Error;
};

/// Shapes that do not fit together (layers, tensors, labels).
class ShapeError : public Error {
 public:
  using Error::Error;
};

/// Reading or writing a file failed at the operating-system level.
class IoError : public Error {
 public:
  using Error::Error;
};

/// An API called out of order or with an invalid argument (fit before compile, batch size 0).
class UsageError : public Error {
 public:
  using Error::Error;
};

/// A loss, gradient or weight became NaN or infinite during training.
class NumericError : public Error {
 public:
  using Error::Error;
};

namespace detail {

/// A number as error messages show it: "%.9g" (-0.1, 1e-10, nan, inf), where
/// std::to_string would print "-0.000000" for a tiny value.
inline std::string option_value_text(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.9g", v);
  return text;
}

}  // namespace detail

}  // namespace loom
