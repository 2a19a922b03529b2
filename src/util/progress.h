// A one-line progress bar on stderr (done/total, rate, ETA, free-form status).
// Hand-written: ~80 lines, and no packaged library is on both Debian 12 and the
// GPU machine's Ubuntu. Silent when stderr is not a terminal, except for a
// final line, so logs from CI and pipes stay readable.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace lawcat {
class Progress {
 public:
  Progress(std::string label, int64_t total, std::string unit = "it");
  ~Progress();
  void set_status(std::string status) { status_ = std::move(status); }
  // Advance by n units (redraws at most ~10 times per second).
  void advance(int64_t n = 1);
  void finish();
  double elapsed_seconds() const;

 private:
  void draw(bool final);
  std::string label_, unit_, status_;
  int64_t total_, done_ = 0;
  bool tty_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};
}  // namespace lawcat
