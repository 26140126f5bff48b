#pragma once
// The public gradient checker (loom/testing/gradient_check.hpp) in Catch2 form:
// REQUIRE_GRADIENTS(layer, x) or REQUIRE_GRADIENTS(layer, x, options), and
// REQUIRE_LAYER_GRADIENTS(layer, input_shape[, options]). Each prints the
// per-tensor report when it fails.

#include <catch2/catch.hpp>

#include "loom/testing/gradient_check.hpp"

#define LOOM_REQUIRE_REPORT_OK(report_expr)                         \
  do {                                                              \
    const ::loom::testing::GradientReport loom_gc_report_ = report_expr; \
    INFO(loom_gc_report_.describe());                               \
    REQUIRE(loom_gc_report_.ok());                                  \
  } while (false)

#define REQUIRE_GRADIENTS(...) LOOM_REQUIRE_REPORT_OK(::loom::testing::check_gradients(__VA_ARGS__))
#define REQUIRE_LAYER_GRADIENTS(...) LOOM_REQUIRE_REPORT_OK(::loom::testing::check_layer(__VA_ARGS__))
