// Helpers shared by the config loader, the schema checks and the example generator (internal to server/config).
#pragma once

#include "server/api/options.hpp"

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace cg::config::detail {

// TOML text for a value: a basic string with every needed escape, a float that reads back to the same double
// ("0.5", "2.0", "1e+300", "nan", "-inf"), an integer, true/false, or an inline array of strings.
std::string toml_string(std::string_view s);
std::string toml_float(double d);
std::string toml_value(const api::OptionValue& v);
// A key or table-name part: bare when TOML allows it, quoted otherwise.
std::string toml_key(std::string_view key);
// "a.b.c" → each part through toml_key.
std::string toml_table_name(std::string_view dotted);

// A bound (OptionSpec::min/max) as text: an integer for Int options, a TOML float otherwise.
std::string format_bound(api::OptionType type, double bound);
std::string join(const std::vector<std::string>& items, std::string_view sep);

// Optimal-string-alignment distance: insertions, deletions, substitutions and swaps of neighbours cost 1 each.
std::size_t edit_distance(std::string_view a, std::string_view b);

// Bounds: "" when v is within [min, max] (NaN never is, when a bound is set), else "must be between A and B, found X".
std::string check_bounds(const api::OptionSpec& spec, long double v, std::string_view found);
// Choices: "" when `choices` is empty or holds s, else "must be one of: a, b, found 's'".
std::string check_choice(const api::OptionSpec& spec, std::string_view s);
// Type, bounds and choices of a whole value (for checking declared defaults): "" when it is acceptable.
std::string check_value(const api::OptionSpec& spec, const api::OptionValue& v);

} // namespace cg::config::detail
