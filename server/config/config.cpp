#include "server/config/config.hpp"

#include "server/config/detail.hpp"

#include <algorithm>
#include <stdexcept>

namespace cg::config {

// Schema ----------------------------------------------------------------------------------------------------------

// A declaration mistake is a programming error found at start-up: the example config must load back and give the
// defaults, so every default has to pass the same checks as a value from the file.
void Schema::add(api::OptionSection section) {
  if (section.name.empty())
    throw std::invalid_argument("option section with an empty name");
  if (find(section.name))
    throw std::invalid_argument("option section '" + section.name + "' declared twice");
  for (std::size_t i = 0; i < section.options.size(); ++i) {
    const auto& spec = section.options[i];
    const std::string name = section.name + "." + spec.key;
    if (spec.key.empty())
      throw std::invalid_argument("option with an empty key in section '" + section.name + "'");
    for (std::size_t j = 0; j < i; ++j)
      if (section.options[j].key == spec.key)
        throw std::invalid_argument("option '" + name + "' declared twice");
    if (spec.min && spec.max && !(*spec.min <= *spec.max))
      throw std::invalid_argument("option '" + name + "': min is above max");
    if (auto err = detail::check_value(spec, spec.default_value); !err.empty())
      throw std::invalid_argument("option '" + name + "': default " + err);
  }
  sections_.push_back(std::move(section));
}

const api::OptionSection* Schema::find(std::string_view name) const {
  auto it = std::find_if(sections_.begin(), sections_.end(), [&](const auto& s) { return s.name == name; });
  return it == sections_.end() ? nullptr : &*it;
}

// ConfigError -----------------------------------------------------------------------------------------------------

std::string ConfigError::str() const {
  std::string out = file;
  if (line > 0) {
    out += ':' + std::to_string(line);
    if (column > 0)
      out += ':' + std::to_string(column);
  }
  out += ": ";
  if (!key.empty())
    out += "key '" + key + "': ";
  out += message;
  return out;
}

// Config ----------------------------------------------------------------------------------------------------------

const api::OptionValue& Config::get(std::string_view section, std::string_view key) const {
  auto s = values_.find(section);
  if (s != values_.end()) {
    auto k = s->second.find(key);
    if (k != s->second.end())
      return k->second;
  }
  throw std::out_of_range("undeclared option '" + std::string(section) + "." + std::string(key) + "'");
}

bool Config::get_bool(std::string_view section, std::string_view key) const {
  return std::get<bool>(get(section, key));
}

std::int64_t Config::get_int(std::string_view section, std::string_view key) const {
  return std::get<std::int64_t>(get(section, key));
}

double Config::get_float(std::string_view section, std::string_view key) const {
  return std::get<double>(get(section, key));
}

const std::string& Config::get_string(std::string_view section, std::string_view key) const {
  return std::get<std::string>(get(section, key));
}

const std::vector<std::string>& Config::get_list(std::string_view section, std::string_view key) const {
  return std::get<std::vector<std::string>>(get(section, key));
}

bool Config::is_set(std::string_view section, std::string_view key) const {
  get(section, key); // throws for an undeclared option, like the getters
  auto s = explicit_.find(section);
  return s != explicit_.end() && std::find(s->second.begin(), s->second.end(), key) != s->second.end();
}

// A declared section without options, or one that is not declared, has no values: an empty map, not an exception,
// so that the module host can hand every module its section without special cases.
const std::map<std::string, api::OptionValue, std::less<>>& Config::section(std::string_view name) const {
  static const std::map<std::string, api::OptionValue, std::less<>> empty;
  auto s = values_.find(name);
  return s == values_.end() ? empty : s->second;
}

void Config::set(std::string section, std::string key, api::OptionValue value, bool explicitly) {
  auto& keys = explicit_[section];
  auto it = std::find(keys.begin(), keys.end(), key);
  if (explicitly && it == keys.end())
    keys.push_back(key);
  else if (!explicitly && it != keys.end())
    keys.erase(it);
  values_[std::move(section)].insert_or_assign(std::move(key), std::move(value));
}

Config defaults(const Schema& schema) {
  Config config;
  for (const auto& section : schema.sections())
    for (const auto& spec : section.options)
      config.set(section.name, spec.key, spec.default_value, false);
  return config;
}

} // namespace cg::config
