#pragma once
// Running the built `loom` tool from a test, its output captured in the test's temp dir.

#include <string>
#include <vector>

#include "subprocess.hpp"
#include "temp_dir.hpp"

#ifdef LOOM_TOOL_PATH  // set by tests/CMakeLists.txt when the tool is built (LOOM_BUILD_TOOLS)

namespace loom::testing {

inline ProcessResult loom_tool(const TempDir& dir, std::vector<std::string> args) {
  args.insert(args.begin(), LOOM_TOOL_PATH);
  return run_process(args, dir / "output.txt");
}

}  // namespace loom::testing

#endif  // LOOM_TOOL_PATH
