// XML text for modules that keep stanzas or payloads in storage (offline messages, the message archive, private XML
// storage): the escaping writer and the restricted parser of server/xml, which modules may not include directly
// (DESIGN.md §1).
#pragma once

#include "server/api/stanza.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace cg::api {

// The element as XML text, through the escaping writer (server/xml/writer.hpp); its namespace is declared.
std::string to_xml(const Element& el);
// Parses one complete element with the stream parser's restrictions (RFC 6120 §11: no DTD, no entity declarations,
// no processing instructions or comments) and default limits. nullopt, and `error` set when given, on failure.
std::optional<Element> parse_xml(std::string_view text, std::string* error = nullptr);

} // namespace cg::api
