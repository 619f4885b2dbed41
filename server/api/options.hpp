// Typed option declarations. The core and every module declare their options here; the config loader validates the
// TOML file against them and conf/chatgroup.example.toml is generated from them (never written twice by hand).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace cg::api {

enum class OptionType { Bool, Int, Float, String, StringList };

using OptionValue = std::variant<bool, std::int64_t, double, std::string, std::vector<std::string>>;

struct OptionSpec {
  std::string key; // within its section, e.g. "port"
  OptionType type = OptionType::String;
  OptionValue default_value;
  std::string doc;                  // one line
  std::optional<double> min;        // Int/Float: lowest allowed value
  std::optional<double> max;        // Int/Float: highest allowed value
  std::vector<std::string> choices; // String (or each StringList item): allowed values; empty = any
};

// A named table of options: "server", "c2s", or "modules.ping" for a module's own options.
struct OptionSection {
  std::string name;
  std::string doc; // one line, printed above the table in the example config
  std::vector<OptionSpec> options;
};

OptionSpec opt_bool(std::string key, bool def, std::string doc);
OptionSpec opt_int(std::string key, std::int64_t def, std::int64_t min, std::int64_t max, std::string doc);
OptionSpec opt_float(std::string key, double def, double min, double max, std::string doc);
OptionSpec opt_string(std::string key, std::string def, std::string doc, std::vector<std::string> choices = {});
OptionSpec opt_list(std::string key, std::vector<std::string> def, std::string doc,
                    std::vector<std::string> choices = {});

std::string_view type_name(OptionType t); // "boolean", "integer", "float", "string", "array of strings"

} // namespace cg::api
