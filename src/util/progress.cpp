#include "util/progress.h"

#include <unistd.h>

#include <cstdio>

namespace lawcat {
Progress::Progress(std::string label, int64_t total, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), total_(total),
      tty_(::isatty(STDERR_FILENO) != 0), start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

Progress::~Progress() {
  if (!finished_) finish();
}

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::advance(int64_t n) {
  done_ += n;
  auto now = std::chrono::steady_clock::now();
  if (tty_ && (now - last_draw_ > std::chrono::milliseconds(100) || done_ >= total_)) {
    last_draw_ = now;
    draw(false);
  }
}

void Progress::finish() {
  finished_ = true;
  draw(true);
}

void Progress::draw(bool final) {
  double secs = elapsed_seconds();
  double rate = secs > 0 ? done_ / secs : 0.0;
  double frac = total_ > 0 ? std::min(1.0, static_cast<double>(done_) / total_) : 0.0;
  const int width = 24;
  int filled = static_cast<int>(frac * width);
  std::string bar(filled, '#');
  bar.resize(width, '.');
  double eta = rate > 0 && total_ > done_ ? (total_ - done_) / rate : 0.0;
  char line[512];
  std::snprintf(line, sizeof line, "%s [%s] %lld/%lld %s %.1f %s/s %s %.0fs %s",
                label_.c_str(), bar.c_str(), static_cast<long long>(done_),
                static_cast<long long>(total_), unit_.c_str(), rate, unit_.c_str(),
                final ? "in" : "eta", final ? secs : eta, status_.c_str());
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s%s", line, final ? "\n" : "");
  } else if (final) {
    std::fprintf(stderr, "%s\n", line);
  }
  std::fflush(stderr);
}
}  // namespace lawcat
