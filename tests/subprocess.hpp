#pragma once
// Running programs from tests: loom's tool, or this test binary itself (to
// have a process to kill). Output (stdout and stderr together) goes to a file.

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "loom/error.hpp"

extern char** environ;

namespace loom::testing {

/// Starts argv[0] with argv, this process's environment plus extra_env
/// ("NAME=value" entries), stdout and stderr appended to output.
inline pid_t spawn_process(const std::vector<std::string>& argv, const std::filesystem::path& output,
                           const std::vector<std::string>& extra_env = {}) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) env_strings.emplace_back(*e);
  env_strings.insert(env_strings.end(), extra_env.begin(), extra_env.end());
  std::vector<char*> env, args;
  for (std::string& s : env_strings) env.push_back(s.data());
  env.push_back(nullptr);
  std::vector<std::string> argv_copy = argv;
  for (std::string& s : argv_copy) args.push_back(s.data());
  args.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, output.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw Error("cannot start " + argv[0] + ": error " + std::to_string(rc));
  return pid;
}

/// waitpid's status for pid.
inline int wait_process(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) throw Error("waitpid failed");
  return status;
}

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal
  std::string output;  // stdout and stderr
};

/// Runs argv to completion in dir's output file; returns its exit code and output.
inline ProcessResult run_process(const std::vector<std::string>& argv, const std::filesystem::path& output) {
  std::filesystem::remove(output);
  const int status = wait_process(spawn_process(argv, output));
  std::ifstream f(output);
  std::ostringstream text;
  text << f.rdbuf();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, text.str()};
}

/// This test binary's own path, to run one of its hidden test cases as a process.
inline std::string this_executable() { return std::filesystem::read_symlink("/proc/self/exe").string(); }

}  // namespace loom::testing
