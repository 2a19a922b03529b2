// Number, duration and shape formatting for tables, logs, progress lines and error
// messages: the one home of these helpers (train, eval, bench, cli, io and model use them).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lawcat::format {

// `v` with `decimals` digits after the point (std::fixed): fixed(3.14159, 2) = "3.14".
std::string fixed(double v, int decimals);

// `v` with `digits` significant digits (the stream's general notation):
// significant(0.000123456, 3) = "0.000123", significant(1234567, 3) = "1.23e+06".
std::string significant(double v, int digits = 4);

// A count with a K / M / G suffix and one decimal (1234 -> "1.2K", 5e9 -> "5.0G");
// below 1000, `small_decimals` decimals (512 -> "512", or "512.0" with 1).
std::string human_count(double v, int small_decimals = 0);

// Seconds as "1h05m", "3m07s" or "12.3s".
std::string duration(double seconds);

// A tensor shape as "[2, 3]" ("[]" for a scalar), as error messages name shapes.
std::string shape(const std::vector<int64_t>& dims);

}  // namespace lawcat::format
