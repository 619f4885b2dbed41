// load_file / load_string: toml++ parses, then every table and key is checked against the Schema. All errors are
// collected (a syntax error stops toml++, so it is always alone) and returned in the order of the file.
#include "server/config/config.hpp"

#include "server/config/detail.hpp"

#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>

namespace cg::config {
namespace {

std::string found_type(const toml::node& node) {
  switch (node.type()) {
  case toml::node_type::string:
    return "string";
  case toml::node_type::integer:
    return "integer";
  case toml::node_type::floating_point:
    return "float";
  case toml::node_type::boolean:
    return "boolean";
  case toml::node_type::date:
    return "date";
  case toml::node_type::time:
    return "time";
  case toml::node_type::date_time:
    return "date-time";
  case toml::node_type::array:
    return "array";
  case toml::node_type::table:
    return "table";
  case toml::node_type::none:
    break;
  }
  return "nothing";
}

bool looks_like_table(const toml::node& node) {
  if (node.is_table())
    return true;
  const auto* array = node.as_array();
  return array && array->is_array_of_tables();
}

class Loader {
public:
  Loader(const Schema& schema, std::string file) : schema_(schema), file_(std::move(file)), config_(defaults(schema)) {
    config_.set_source(file_);
  }

  LoadResult run(std::string_view text) {
#if TOML_EXCEPTIONS
    toml::table root;
    try {
      root = toml::parse(text, std::string_view(file_));
    } catch (const toml::parse_error& e) {
      error(e.source(), "", std::string(e.description()));
      return std::move(errors_);
    }
#else
    toml::parse_result parsed = toml::parse(text, std::string_view(file_));
    if (!parsed) {
      error(parsed.error().source(), "", std::string(parsed.error().description()));
      return std::move(errors_);
    }
    toml::table root = std::move(parsed).table();
#endif
    walk(root, "");
    if (errors_.empty())
      return std::move(config_);
    std::stable_sort(errors_.begin(), errors_.end(), [](const ConfigError& a, const ConfigError& b) {
      return a.line != b.line ? a.line < b.line : a.column < b.column;
    });
    return std::move(errors_);
  }

private:
  void error(const toml::source_region& where, std::string key, std::string message) {
    errors_.push_back(ConfigError{file_, static_cast<int>(where.begin.line), static_cast<int>(where.begin.column),
                                  std::move(key), std::move(message)});
  }
  void error(const toml::node& node, std::string key, std::string message) {
    error(node.source(), std::move(key), std::move(message));
  }

  // A name under which declared sections are nested: "modules" holds "modules.ping".
  bool is_container(std::string_view name) const {
    return std::any_of(schema_.sections().begin(), schema_.sections().end(), [&](const api::OptionSection& s) {
      return s.name.size() > name.size() && s.name.compare(0, name.size(), name) == 0 && s.name[name.size()] == '.';
    });
  }

  // The candidate closest to `wrong`, if one is within an edit distance of 2 (differences of case are free) and
  // close relative to its length, so that "foo" does not suggest "log". The first declared wins a tie.
  static std::string closest(std::string_view wrong, const std::vector<std::string>& candidates) {
    auto lower = [](std::string_view s) {
      std::string out(s);
      for (char& c : out)
        if (c >= 'A' && c <= 'Z')
          c = static_cast<char>(c - 'A' + 'a');
      return out;
    };
    const std::string wrong_lower = lower(wrong);
    const std::string* best = nullptr;
    std::size_t best_distance = 0;
    for (const auto& c : candidates) {
      const auto d = detail::edit_distance(wrong_lower, lower(c));
      if (d > 2 || 2 * d >= std::max(wrong.size(), c.size()))
        continue;
      if (!best || d < best_distance) {
        best = &c;
        best_distance = d;
      }
    }
    return best ? *best : std::string();
  }

  static std::string did_you_mean(const std::string& suggestion) {
    return suggestion.empty() ? "" : "; did you mean '" + suggestion + "'?";
  }

  std::string suggest_section(std::string_view wrong) const {
    std::vector<std::string> names;
    for (const auto& s : schema_.sections())
      names.push_back(s.name);
    return did_you_mean(closest(wrong, names));
  }

  static std::string suggest_key(const api::OptionSection& section, std::string_view wrong_key) {
    std::vector<std::string> keys;
    for (const auto& spec : section.options)
      keys.push_back(spec.key);
    auto best = closest(wrong_key, keys);
    return did_you_mean(best.empty() ? best : section.name + "." + best);
  }

  void walk(const toml::table& table, const std::string& prefix) {
    const api::OptionSection* section = prefix.empty() ? nullptr : schema_.find(prefix);
    for (auto&& [k, node] : table) {
      const std::string key(k.str());
      const std::string name = prefix.empty() ? key : prefix + "." + key;
      if (section) {
        auto spec = std::find_if(section->options.begin(), section->options.end(),
                                 [&](const api::OptionSpec& s) { return s.key == key; });
        if (spec != section->options.end()) {
          check_option(*spec, prefix, node);
          continue;
        }
      }
      if (schema_.find(name) || is_container(name)) {
        if (const auto* sub = node.as_table())
          walk(*sub, name);
        else
          error(node, name, "expected a table ([" + name + "]), found " + found_type(node));
      } else if (prefix.empty()) {
        if (looks_like_table(node))
          error(node, "", "unknown section '" + name + "'" + suggest_section(name));
        else
          error(node, name, "option '" + name + "' is outside any section" + section_for(key));
      } else if (looks_like_table(node) && !(node.is_table() && node.as_table()->is_inline())) {
        // [modules.foo] when no module named foo declares options, or [c2s.foo]
        error(node, "", "unknown section '" + name + "'" + suggest_section(name));
      } else {
        error(node, name, "unknown option '" + name + "'" + (section ? suggest_key(*section, key) : ""));
      }
    }
  }

  // For a key written above every table: the section that declares a key of that name, if one does.
  std::string section_for(std::string_view key) const {
    for (const auto& s : schema_.sections())
      for (const auto& spec : s.options)
        if (spec.key == key)
          return "; did you mean '" + s.name + "." + spec.key + "' (under [" + s.name + "])?";
    return " (options go under a [section] table)";
  }

  void check_option(const api::OptionSpec& spec, const std::string& section, const toml::node& node) {
    const std::string name = section + "." + spec.key;
    auto wrong_type = [&] {
      error(node, name, "expected " + std::string(api::type_name(spec.type)) + ", found " + found_type(node));
    };
    auto accept = [&](api::OptionValue v) { config_.set(section, spec.key, std::move(v), true); };
    switch (spec.type) {
    case api::OptionType::Bool:
      if (const auto* v = node.as_boolean())
        accept(v->get());
      else
        wrong_type();
      return;
    case api::OptionType::Int:
      if (const auto* v = node.as_integer()) {
        const std::int64_t i = v->get();
        if (auto err = detail::check_bounds(spec, static_cast<long double>(i), std::to_string(i)); !err.empty())
          error(node, name, err);
        else
          accept(i);
      } else {
        wrong_type();
      }
      return;
    case api::OptionType::Float: {
      double d = 0;
      std::string text;
      if (const auto* f = node.as_floating_point()) {
        d = f->get();
        text = detail::toml_float(d);
      } else if (const auto* i = node.as_integer()) { // an integer is accepted where a float is expected
        d = static_cast<double>(i->get());
        text = std::to_string(i->get());
      } else {
        wrong_type();
        return;
      }
      if (auto err = detail::check_bounds(spec, static_cast<long double>(d), text); !err.empty())
        error(node, name, err);
      else
        accept(d);
      return;
    }
    case api::OptionType::String:
      if (const auto* v = node.as_string()) {
        if (auto err = detail::check_choice(spec, v->get()); !err.empty())
          error(node, name, err);
        else
          accept(v->get());
      } else {
        wrong_type();
      }
      return;
    case api::OptionType::StringList:
      if (const auto* array = node.as_array()) {
        std::vector<std::string> items;
        bool ok = true;
        for (std::size_t i = 0; i < array->size(); ++i) {
          const toml::node& item = *array->get(i);
          const std::string where = "item " + std::to_string(i + 1) + ": ";
          if (const auto* s = item.as_string()) {
            if (auto err = detail::check_choice(spec, s->get()); !err.empty()) {
              error(item, name, where + err);
              ok = false;
            } else {
              items.push_back(s->get());
            }
          } else {
            error(item, name, where + "expected string, found " + found_type(item));
            ok = false;
          }
        }
        if (ok)
          accept(std::move(items));
      } else {
        wrong_type();
      }
      return;
    }
  }

  const Schema& schema_;
  std::string file_;
  Config config_;
  std::vector<ConfigError> errors_;
};

} // namespace

LoadResult load_string(std::string_view toml, std::string_view source_name, const Schema& schema) {
  return Loader(schema, std::string(source_name)).run(toml);
}

LoadResult load_file(const std::string& path, const Schema& schema) {
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  auto cannot_read = [&](int err) {
    return LoadResult(
        std::vector<ConfigError>{ConfigError{path, 0, 0, "", "cannot read file: " + std::string(std::strerror(err))}});
  };
  if (!f)
    return cannot_read(errno);
  std::string text;
  char buf[65536];
  errno = 0;
  while (true) {
    std::size_t n = std::fread(buf, 1, sizeof buf, f.get());
    text.append(buf, n);
    if (n < sizeof buf) {
      if (std::ferror(f.get()))
        return cannot_read(errno ? errno : EIO);
      break;
    }
  }
  return load_string(text, path, schema);
}

} // namespace cg::config
