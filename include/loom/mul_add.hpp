#pragma once
// mul_add(a, b, c) = a * b + c, rounded the same way wherever it is computed.
//
// Whether a compiler fuses a * b + c into one FMA (one rounding) or leaves a
// multiply and an add (two) can differ between a loop's vector body and its
// scalar tail, so values that must get the same bits however a loop is cut
// (Adam's update, stepped whole or in data-parallel parts) say which one they
// want. On CPUs with FMA it is std::fma, which g++ vectorises as vfmadd; on
// CPUs without, no code can fuse and a * b + c is what runs everywhere.
//
// Thread safety: a pure function.

#include <cmath>

namespace loom {

inline float mul_add(float a, float b, float c) {
#if defined(__FMA__)
  return std::fma(a, b, c);
#else
  return a * b + c;
#endif
}

}  // namespace loom
