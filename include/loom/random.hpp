#pragma once
// The one seeded generator. loom never uses global random state: whoever needs
// randomness (weight initialisation, shuffling) is handed a Random explicitly,
// so a seed fixes every draw. The algorithm is xoshiro256** seeded through
// splitmix64, with our own float and integer mappings, so a seed gives the same
// numbers with every compiler and standard library.
//
// Thread safety: not thread-safe; give each thread its own Random.

#include <array>
#include <cstdint>
#include <span>
#include <utility>

namespace loom {

class Random {
 public:
  using State = std::array<std::uint64_t, 4>;

  explicit Random(std::uint64_t seed = 0) { reseed(seed); }

  void reseed(std::uint64_t seed) {
    for (auto& s : s_) {  // splitmix64: spreads any seed over the whole state
      seed += 0x9E3779B97F4A7C15ull;
      std::uint64_t z = seed;
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      s = z ^ (z >> 31);
    }
  }

  /// The full generator state, to save and restore (checkpoints).
  State state() const { return s_; }
  void set_state(const State& s) { s_ = s; }

  std::uint64_t next() {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  /// Uniform float in [0, 1), 24 random bits.
  float uniform01() { return static_cast<float>(next() >> 40) * (1.0f / 16777216.0f); }

  /// Uniform float in [lo, hi).
  float uniform(float lo, float hi) { return lo + (hi - lo) * uniform01(); }

  /// Uniform integer in [0, n), unbiased (Lemire's multiply-and-reject).
  std::uint64_t below(std::uint64_t n) {
    if (n == 0) return 0;
    const std::uint64_t threshold = (0 - n) % n;
    for (;;) {
      const unsigned __int128 m = static_cast<unsigned __int128>(next()) * n;
      if (static_cast<std::uint64_t>(m) >= threshold) return static_cast<std::uint64_t>(m >> 64);
    }
  }

  /// Fisher-Yates shuffle.
  template <typename T>
  void shuffle(std::span<T> v) {
    for (std::size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(i)]);
  }

 private:
  static std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  State s_{};
};

}  // namespace loom
