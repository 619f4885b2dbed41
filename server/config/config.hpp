// The TOML config (toml++): one file, validated against the declared option sections. Unknown keys, wrong types
// and out-of-range values are errors that name the file, the line and the key.
#pragma once

#include "server/api/options.hpp"

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace cg::config {

// Every section the server knows: the core's (core_sections()) and one per module ("modules.<name>").
class Schema {
public:
  void add(api::OptionSection section);
  const api::OptionSection* find(std::string_view name) const;
  const std::vector<api::OptionSection>& sections() const { return sections_; }

private:
  std::vector<api::OptionSection> sections_;
};

// The core's sections: server, log, tls, c2s, auth, storage, modules. `default_modules` is the default of
// modules.enabled (the registry's default-on modules).
std::vector<api::OptionSection> core_sections(const std::vector<std::string>& default_modules);

struct ConfigError {
  std::string file;
  int line = 0;    // 1-based; 0 when not known
  int column = 0;  // 1-based; 0 when not known
  std::string key; // dotted, e.g. "c2s.port"; "" for a syntax error
  std::string message;
  // "FILE:LINE:COLUMN: key 'c2s.port': MESSAGE" (parts that are unknown are left out)
  std::string str() const;
};

class Config {
public:
  // Values of every declared option (defaults filled in). Throws std::out_of_range for an undeclared key: a
  // programming error.
  const api::OptionValue& get(std::string_view section, std::string_view key) const;
  bool get_bool(std::string_view section, std::string_view key) const;
  std::int64_t get_int(std::string_view section, std::string_view key) const;
  double get_float(std::string_view section, std::string_view key) const;
  const std::string& get_string(std::string_view section, std::string_view key) const;
  const std::vector<std::string>& get_list(std::string_view section, std::string_view key) const;
  // True when the file set this key (rather than the default).
  bool is_set(std::string_view section, std::string_view key) const;

  // Where the config came from: a file path, or "(defaults)".
  const std::string& source() const { return source_; }
  // The values of one section, for the module host.
  const std::map<std::string, api::OptionValue, std::less<>>& section(std::string_view name) const;

  // Used by the loader.
  void set(std::string section, std::string key, api::OptionValue value, bool explicitly);
  void set_source(std::string source) { source_ = std::move(source); }

private:
  std::map<std::string, std::map<std::string, api::OptionValue, std::less<>>, std::less<>> values_;
  std::map<std::string, std::vector<std::string>, std::less<>> explicit_;
  std::string source_ = "(defaults)";
};

using LoadResult = std::variant<Config, std::vector<ConfigError>>;

// The defaults of every declared option.
Config defaults(const Schema& schema);
// Parses and validates; returns every error found, not only the first. A file that cannot be read is one error.
LoadResult load_file(const std::string& path, const Schema& schema);
LoadResult load_string(std::string_view toml, std::string_view source_name, const Schema& schema);

// The example config: every section and option with its default and its one-line doc, as valid TOML that
// load_string() accepts and that gives the defaults.
std::string example_toml(const Schema& schema);

} // namespace cg::config
