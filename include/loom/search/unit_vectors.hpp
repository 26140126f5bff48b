#pragma once
// Search vectors are unit length: a score is a dot product, and the search
// code's bounds (screening_codes.hpp) and int8 storage assume values of at
// most 1. A catalog refuses anything else when items are added or a file is
// read, and every backend refuses such queries, so that a bad vector is a
// clear error rather than a search that quietly returns nothing. All-zero
// vectors are allowed: embed leaves a row of zeros as it is.

#include <cmath>
#include <cstdio>
#include <string>
#include <utility>

#include "loom/tensor.hpp"

namespace loom::search {

/// How far from 1 a vector's length may be: 1 %, plus what int8 storage can
/// move a unit vector's length by (each value rounded by up to max|v| / 254).
inline double unit_length_tolerance(Index dim) { return 0.01 + std::sqrt(static_cast<double>(dim)) / 250.0; }

/// The sum of squares of dim values, in double (NaN or inf when a value is not finite).
inline double sum_of_squares(const float* row, Index dim) {
  double s = 0.0;
  for (Index j = 0; j < dim; ++j) s += static_cast<double>(row[j]) * row[j];
  return s;
}

/// What is wrong with a vector of dim values whose squares sum to squares
/// ("has a value that is not finite", "has length 1.6e+36, ..."); "" when it
/// is of unit length or all zero.
inline std::string unit_length_problem(double squares, Index dim) {
  if (!std::isfinite(squares)) return "has a value that is not finite";
  const double length = std::sqrt(squares);
  if (length == 0.0 || std::abs(length - 1.0) <= unit_length_tolerance(dim)) return "";
  char text[128];
  std::snprintf(text, sizeof text, "has length %.6g; search vectors must be of unit length (or all zero)", length);
  return text;
}

/// The first of n rows of dim values that is not of unit length (or all
/// zero), and what is wrong with it; {-1, ""} when every row is.
inline std::pair<Index, std::string> first_non_unit_row(const float* rows, Index n, Index dim) {
  for (Index i = 0; i < n; ++i)
    if (std::string problem = unit_length_problem(sum_of_squares(rows + i * dim, dim), dim); !problem.empty())
      return {i, std::move(problem)};
  return {-1, ""};
}

}  // namespace loom::search
