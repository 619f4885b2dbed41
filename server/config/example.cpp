// example_toml(): conf/chatgroup.example.toml, generated from the declarations so that it never drifts from them.
#include "server/config/config.hpp"

#include "server/config/detail.hpp"

namespace cg::config {
namespace {

// A doc line inside a TOML comment: TOML forbids control characters there (except tab), and a newline would end
// the comment, so each becomes a space.
std::string comment_text(std::string_view doc) {
  std::string out(doc);
  for (char& c : out)
    if (auto u = static_cast<unsigned char>(c); (u < 0x20 && c != '\t') || u == 0x7f)
      c = ' ';
  return out;
}

std::string describe(const api::OptionSpec& spec) {
  std::string out = "(" + std::string(api::type_name(spec.type));
  if (spec.min || spec.max) {
    out += ", ";
    if (spec.min)
      out += detail::format_bound(spec.type, *spec.min);
    out += "..";
    if (spec.max)
      out += detail::format_bound(spec.type, *spec.max);
  }
  if (!spec.choices.empty())
    out += "; one of: " + detail::join(spec.choices, ", ");
  return out + ")";
}

} // namespace

std::string example_toml(const Schema& schema) {
  std::string out = "# ChatGroup configuration — every option with its default. Generated from the option declarations "
                    "by `chatgroupd --print-example-config`; do not edit by hand.\n";
  for (const auto& section : schema.sections()) {
    out += "\n";
    if (!section.doc.empty())
      out += "# " + comment_text(section.doc) + "\n";
    out += "[" + detail::toml_table_name(section.name) + "]\n";
    for (const auto& spec : section.options) {
      out += "# ";
      if (!spec.doc.empty())
        out += comment_text(spec.doc) + " ";
      out += comment_text(describe(spec)) + "\n";
      out += detail::toml_key(spec.key) + " = " + detail::toml_value(spec.default_value) + "\n";
    }
  }
  return out;
}

} // namespace cg::config
