#include "server/api/xml.hpp"

#include "server/xml/stream_parser.hpp"
#include "server/xml/writer.hpp"

namespace cg::api {

std::string to_xml(const Element& el) {
  return xml::to_string(el);
}

std::optional<Element> parse_xml(std::string_view text, std::string* error) {
  Element el;
  std::string why;
  if (!xml::parse_element(text, el, why)) {
    if (error != nullptr) {
      *error = std::move(why);
    }
    return std::nullopt;
  }
  return el;
}

} // namespace cg::api
