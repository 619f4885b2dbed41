#include "server/api/options.hpp"

#include <utility>

namespace cg::api {

OptionSpec opt_bool(std::string key, bool def, std::string doc) {
  OptionSpec s;
  s.key = std::move(key);
  s.type = OptionType::Bool;
  s.default_value = def;
  s.doc = std::move(doc);
  return s;
}

OptionSpec opt_int(std::string key, std::int64_t def, std::int64_t min, std::int64_t max, std::string doc) {
  OptionSpec s;
  s.key = std::move(key);
  s.type = OptionType::Int;
  s.default_value = def;
  s.doc = std::move(doc);
  s.min = static_cast<double>(min);
  s.max = static_cast<double>(max);
  return s;
}

OptionSpec opt_float(std::string key, double def, double min, double max, std::string doc) {
  OptionSpec s;
  s.key = std::move(key);
  s.type = OptionType::Float;
  s.default_value = def;
  s.doc = std::move(doc);
  s.min = min;
  s.max = max;
  return s;
}

OptionSpec opt_string(std::string key, std::string def, std::string doc, std::vector<std::string> choices) {
  OptionSpec s;
  s.key = std::move(key);
  s.type = OptionType::String;
  s.default_value = std::move(def);
  s.doc = std::move(doc);
  s.choices = std::move(choices);
  return s;
}

OptionSpec opt_list(std::string key, std::vector<std::string> def, std::string doc, std::vector<std::string> choices) {
  OptionSpec s;
  s.key = std::move(key);
  s.type = OptionType::StringList;
  s.default_value = std::move(def);
  s.doc = std::move(doc);
  s.choices = std::move(choices);
  return s;
}

std::string_view type_name(OptionType t) {
  switch (t) {
  case OptionType::Bool:
    return "boolean";
  case OptionType::Int:
    return "integer";
  case OptionType::Float:
    return "float";
  case OptionType::String:
    return "string";
  case OptionType::StringList:
    return "array of strings";
  }
  return "unknown";
}

} // namespace cg::api
