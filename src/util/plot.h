// The one gnuplot driver: quoting for gnuplot scripts and running a script
// that writes a PNG. Each plot (eval tables, loss curves, sweeps) writes its
// own data and script, then calls run().
#pragma once
#include <filesystem>
#include <string>

namespace lawcat::plot {

// Whether gnuplot is on PATH.
bool have_gnuplot();

// `s` as a gnuplot double-quoted string ("..." with \" and \\ escaped).
std::string quote(const std::string& s);

// `p` as a gnuplot single-quoted file name ('...' with '' for ').
std::string file(const std::filesystem::path& p);

// Runs gnuplot on `script`, which writes `png`; gnuplot's messages go to
// <script>.log, removed on success. Returns false with a warning when gnuplot
// is missing, fails or writes no `png`.
bool run(const std::filesystem::path& script, const std::filesystem::path& png);

}  // namespace lawcat::plot
