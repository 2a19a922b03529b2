// Finding the Python the tests compare against (the reference safetensors, transformers, the
// scripts/*.py tools), and quoting for the shell commands that run it.
#pragma once
#include <cstdlib>
#include <string>
#include <vector>

namespace lawcat::test {

inline std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs a shell command with its stdout and stderr in `log` (read back with read_text); its exit status.
inline int run_logged(const std::string& cmd, const std::string& log) {
  return std::system((cmd + " > " + shell_quote(log) + " 2>&1").c_str());
}

// The first Python that imports `modules` (a Python import list), or "": $LAWCAT_PYTHON, the
// build's Python (LAWCAT_TEST_PYTHON, from setup.sh), the setup's venv, python3. `tried` lists them.
inline std::string find_python(std::string& tried, const std::string& modules = "torch, safetensors.torch") {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("LAWCAT_PYTHON")) candidates.emplace_back(env);
#ifdef LAWCAT_TEST_PYTHON
  candidates.emplace_back(LAWCAT_TEST_PYTHON);
#endif
  if (const char* home = std::getenv("HOME")) candidates.push_back(std::string(home) + "/.cache/lawcat/venv/bin/python");
  candidates.emplace_back("python3");
  for (const auto& py : candidates) {
    if (py.empty()) continue;
    tried += (tried.empty() ? "" : ", ") + py;
    const std::string cmd = shell_quote(py) + " -c 'import " + modules + "' >/dev/null 2>&1";
    if (std::system(cmd.c_str()) == 0) return py;
  }
  return "";
}

}  // namespace lawcat::test
