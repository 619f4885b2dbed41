#include "server/config/detail.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace cg::config::detail {

std::string toml_string(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  for (char c : s) {
    switch (c) {
    case '"':
      out += "\\\"";
      break;
    case '\\':
      out += "\\\\";
      break;
    case '\b':
      out += "\\b";
      break;
    case '\t':
      out += "\\t";
      break;
    case '\n':
      out += "\\n";
      break;
    case '\f':
      out += "\\f";
      break;
    case '\r':
      out += "\\r";
      break;
    default:
      if (auto u = static_cast<unsigned char>(c); u < 0x20 || u == 0x7f) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "\\u%04X", static_cast<unsigned>(u));
        out += buf;
      } else {
        out += c; // UTF-8 is written as is: TOML files are UTF-8
      }
    }
  }
  out += '"';
  return out;
}

std::string toml_float(double d) {
  if (std::isnan(d))
    return "nan";
  if (std::isinf(d))
    return d < 0 ? "-inf" : "inf";
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d); // shortest text that reads back to the same double
  std::string out(buf, ec == std::errc{} ? end : buf);
  if (out.find_first_of(".eE") == std::string::npos)
    out += ".0"; // TOML needs a fraction or an exponent to make it a float
  return out;
}

std::string toml_value(const api::OptionValue& v) {
  struct Visitor {
    std::string operator()(bool b) const { return b ? "true" : "false"; }
    std::string operator()(std::int64_t i) const { return std::to_string(i); }
    std::string operator()(double d) const { return toml_float(d); }
    std::string operator()(const std::string& s) const { return toml_string(s); }
    std::string operator()(const std::vector<std::string>& l) const {
      std::string out = "[";
      for (std::size_t i = 0; i < l.size(); ++i) {
        if (i)
          out += ", ";
        out += toml_string(l[i]);
      }
      return out + "]";
    }
  };
  return std::visit(Visitor{}, v);
}

std::string toml_key(std::string_view key) {
  bool bare = !key.empty() && std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
  });
  return bare ? std::string(key) : toml_string(key);
}

std::string toml_table_name(std::string_view dotted) {
  std::string out;
  std::size_t start = 0;
  while (true) {
    auto dot = dotted.find('.', start);
    out += toml_key(dotted.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
    if (dot == std::string_view::npos)
      break;
    out += '.';
    start = dot + 1;
  }
  return out;
}

std::string format_bound(api::OptionType type, double bound) {
  if (type == api::OptionType::Int && std::isfinite(bound) && bound == std::trunc(bound) && std::fabs(bound) < 9.2e18)
    return std::to_string(static_cast<long long>(bound));
  return toml_float(bound);
}

std::string join(const std::vector<std::string>& items, std::string_view sep) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i)
      out += sep;
    out += items[i];
  }
  return out;
}

std::size_t edit_distance(std::string_view a, std::string_view b) {
  const std::size_t n = a.size(), m = b.size();
  std::vector<std::vector<std::size_t>> d(n + 1, std::vector<std::size_t>(m + 1));
  for (std::size_t i = 0; i <= n; ++i)
    d[i][0] = i;
  for (std::size_t j = 0; j <= m; ++j)
    d[0][j] = j;
  for (std::size_t i = 1; i <= n; ++i) {
    for (std::size_t j = 1; j <= m; ++j) {
      std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[n][m];
}

std::string check_bounds(const api::OptionSpec& spec, long double v, std::string_view found) {
  bool ok = (!spec.min || v >= static_cast<long double>(*spec.min)) &&
            (!spec.max || v <= static_cast<long double>(*spec.max));
  if (ok)
    return {};
  std::string msg;
  if (spec.min && spec.max)
    msg = "must be between " + format_bound(spec.type, *spec.min) + " and " + format_bound(spec.type, *spec.max);
  else if (spec.min)
    msg = "must be at least " + format_bound(spec.type, *spec.min);
  else
    msg = "must be at most " + format_bound(spec.type, *spec.max);
  return msg + ", found " + std::string(found);
}

std::string check_choice(const api::OptionSpec& spec, std::string_view s) {
  if (spec.choices.empty() || std::find(spec.choices.begin(), spec.choices.end(), s) != spec.choices.end())
    return {};
  return "must be one of: " + join(spec.choices, ", ") + ", found '" + std::string(s) + "'";
}

std::string check_value(const api::OptionSpec& spec, const api::OptionValue& v) {
  static constexpr api::OptionType by_index[] = {api::OptionType::Bool, api::OptionType::Int, api::OptionType::Float,
                                                 api::OptionType::String, api::OptionType::StringList};
  if (v.index() != static_cast<std::size_t>(spec.type))
    return "expected " + std::string(api::type_name(spec.type)) + ", found " +
           std::string(api::type_name(by_index[v.index()]));
  if (const auto* i = std::get_if<std::int64_t>(&v))
    return check_bounds(spec, static_cast<long double>(*i), std::to_string(*i));
  if (const auto* d = std::get_if<double>(&v))
    return check_bounds(spec, static_cast<long double>(*d), toml_float(*d));
  if (const auto* s = std::get_if<std::string>(&v))
    return check_choice(spec, *s);
  if (const auto* l = std::get_if<std::vector<std::string>>(&v)) {
    for (std::size_t i = 0; i < l->size(); ++i)
      if (auto err = check_choice(spec, (*l)[i]); !err.empty())
        return "item " + std::to_string(i + 1) + ": " + err;
  }
  return {};
}

} // namespace cg::config::detail
