// Command-line flags of loom's programs: values reach the handler, and every
// mistake is a UsageError that says what was wrong and shows the usage.

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "loom/cli.hpp"

using namespace loom;
using Catch::Contains;

namespace {

// argv for parse_flags from strings (argv[0] is the program).
struct Argv {
  std::vector<std::string> args;
  std::vector<char*> ptrs;
  explicit Argv(std::vector<std::string> a) : args(std::move(a)) {
    for (std::string& s : args) ptrs.push_back(s.data());
  }
  int argc() const { return static_cast<int>(ptrs.size()); }
  char** argv() { return ptrs.data(); }
};

}  // namespace

TEST_CASE("cli::parse_int accepts whole numbers at or above the minimum", "[cli]") {
  CHECK(cli::parse_int("--epochs", "5", 1) == 5);
  CHECK(cli::parse_int("--limit", "0", 0) == 0);
  REQUIRE_THROWS_AS(cli::parse_int("--epochs", "0", 1), UsageError);
  REQUIRE_THROWS_WITH(cli::parse_int("--epochs", "five", 1), Contains("--epochs expects a whole number >= 1, got \"five\""));
  REQUIRE_THROWS_AS(cli::parse_int("--epochs", "5x", 1), UsageError);
  REQUIRE_THROWS_AS(cli::parse_int("--epochs", "", 1), UsageError);
  REQUIRE_THROWS_AS(cli::parse_int("--epochs", "99999999999999999999999", 1), UsageError);
}

TEST_CASE("cli::parse_int_list reads exactly the count asked for, each at or above the minimum", "[cli]") {
  CHECK(cli::parse_int_list("--blocks", "1,2,1", 3, 1) == std::vector<long long>{1, 2, 1});
  CHECK(cli::parse_int_list("--n", "7", 1, 0) == std::vector<long long>{7});
  for (const char* bad : {"1,2", "1,2,1,1", "1,0,1", "1,,1", "1,2,", ",1,2", "1,x,1", "", "1;2;1"})
    CHECK_THROWS_WITH(cli::parse_int_list("--blocks", bad, 3, 1),
                      Contains("--blocks expects 3 comma-separated whole numbers >= 1, got \"" + std::string(bad) + "\""));
}

TEST_CASE("cli::parse_flags hands over pairs and rejects unknown flags and missing values", "[cli]") {
  const std::string usage = "usage: prog [--epochs N]\n";
  std::vector<std::string> seen;
  auto known = [&](const std::string& flag, const char* value) {
    if (flag != "--epochs" && flag != "--data") return false;
    seen.push_back(flag + "=" + value);
    return true;
  };

  Argv ok({"prog", "--epochs", "3", "--data", "/tmp/x"});
  cli::parse_flags(ok.argc(), ok.argv(), usage, known);
  CHECK(seen == std::vector<std::string>{"--epochs=3", "--data=/tmp/x"});

  Argv unknown({"prog", "--epoch", "3"});
  REQUIRE_THROWS_WITH(cli::parse_flags(unknown.argc(), unknown.argv(), usage, known),
                      Contains("unknown option --epoch") && Contains(usage));
  Argv missing({"prog", "--epochs"});
  REQUIRE_THROWS_WITH(cli::parse_flags(missing.argc(), missing.argv(), usage, known),
                      Contains("missing value: --epochs"));
}
