// The escaping writer: the only way XML leaves the server. Never build XML by string concatenation.
#pragma once

#include "server/xml/element.hpp"

#include <string>
#include <string_view>

namespace cg::xml {

// Appends `s` escaped for character data (&, <, > escaped).
void escape_text(std::string& out, std::string_view s);
// Appends `s` escaped for an attribute value delimited by single quotes (&, <, >, ', " escaped).
void escape_attr(std::string& out, std::string_view s);

// Appends the serialisation of `el` to `out`. `parent_ns` is the default namespace in scope where the element is
// written: an xmlns declaration is emitted only when the element's namespace differs from it. Stanzas written
// into a stream pass the stream's content namespace (jabber:client / jabber:server); an element whose namespace is
// jabber:client or jabber:server is written in the stream's content namespace, so a stanza routed from a c2s to an
// s2s stream changes namespace as RFC 6120 §4.8.3 requires.
void serialize(std::string& out, const Element& el, std::string_view parent_ns = {});
std::string to_string(const Element& el, std::string_view parent_ns = {});

} // namespace cg::xml
