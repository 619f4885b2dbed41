// The escaping writer. Appends to the caller's buffer; no temporary string per node or attribute.
//
// Besides the characters the XML grammar requires (& < > in text; & < > ' " in attribute values), it writes
// characters as references where a parser would otherwise change them, so that parse → serialize → parse gives
// back the same tree: CR as &#13; (line-end normalisation) and, in attribute values, TAB/LF as &#9;/&#10;
// (attribute-value normalisation). Control characters that XML 1.0 cannot carry at all (U+0000-U+001F other than
// TAB, LF, CR) are replaced by U+FFFD, so that a module's text can never make the peer's parser fail.
#include "server/xml/writer.hpp"

#include <array>
#include <cstdint>

namespace cg::xml {

namespace {

using Table = std::array<const char*, 256>;

constexpr const char* kReplacement = "\xEF\xBF\xBD"; // U+FFFD

constexpr Table make_table(bool attribute) {
  Table t{};
  for (int c = 0; c < 0x20; ++c) {
    t[c] = kReplacement;
  }
  t['\t'] = attribute ? "&#9;" : nullptr;
  t['\n'] = attribute ? "&#10;" : nullptr;
  t['\r'] = "&#13;";
  t['&'] = "&amp;";
  t['<'] = "&lt;";
  t['>'] = "&gt;";
  if (attribute) {
    t['\''] = "&apos;";
    t['"'] = "&quot;";
  }
  return t;
}

constexpr Table kText = make_table(false);
constexpr Table kAttr = make_table(true);

inline void escape(std::string& out, std::string_view s, const Table& table) {
  const char* p = s.data();
  const char* const end = p + s.size();
  const char* run = p;
  for (; p != end; ++p) {
    const char* rep = table[static_cast<unsigned char>(*p)];
    if (rep != nullptr) {
      out.append(run, static_cast<std::size_t>(p - run));
      out.append(rep);
      run = p + 1;
    }
  }
  out.append(run, static_cast<std::size_t>(end - run));
}

bool is_content_ns(std::string_view ns) {
  return ns == ns::client || ns == ns::server;
}

void append_number(std::string& out, unsigned n) {
  char buf[12];
  char* p = buf + sizeof buf;
  do {
    *--p = static_cast<char>('0' + n % 10);
    n /= 10;
  } while (n != 0);
  out.append(p, static_cast<std::size_t>(buf + sizeof buf - p));
}

void write_attributes(std::string& out, const Element& el) {
  unsigned prefixes = 0;
  for (const Attribute& a : el.attrs()) {
    std::string_view name = a.name;
    // "{uri}local": local names cannot contain '}', so the last one ends the URI.
    if (name.size() > 2 && name.front() == '{') {
      const auto close = name.rfind('}');
      if (close != std::string_view::npos && close != 0) {
        const std::string_view uri = name.substr(1, close - 1);
        const std::string_view local = name.substr(close + 1);
        if (uri == ns::xml) {
          // The xml prefix is bound by definition and must not be declared.
          out += " xml:";
          out += local;
        } else if (uri.empty()) {
          out += ' ';
          out += local;
        } else {
          // A fresh prefix per attribute: declaring two prefixes for one URI is legal, and it keeps this linear.
          ++prefixes;
          out += " xmlns:ns";
          append_number(out, prefixes);
          out += "='";
          escape(out, uri, kAttr);
          out += "' ns";
          append_number(out, prefixes);
          out += ':';
          out += local;
        }
        out += "='";
        escape(out, a.value, kAttr);
        out += '\'';
        continue;
      }
    }
    out += ' ';
    out += name;
    out += "='";
    escape(out, a.value, kAttr);
    out += '\'';
  }
}

// `scope` is the default namespace in force where `el` is written. While `remap_from` is non-empty, an element in
// that namespace is written in `remap_to` (the stream content namespace switch); the switch follows only a chain of
// such elements from the top, so a <forwarded/> message inside keeps its own jabber:client.
void write_element(std::string& out, const Element& el, std::string_view scope, std::string_view remap_from,
                   std::string_view remap_to) {
  std::string_view ns = el.ns();
  bool remapped = false;
  if (!remap_from.empty() && ns == remap_from) {
    ns = remap_to;
    remapped = true;
  }
  // The xml namespace cannot be the default namespace: such an element keeps the xml prefix and the scope.
  const bool xml_prefixed = ns == ns::xml;
  out += '<';
  if (xml_prefixed) {
    out += "xml:";
  }
  out += el.name();
  if (!xml_prefixed && ns != scope) {
    out += " xmlns='";
    escape(out, ns, kAttr);
    out += '\'';
  }
  const std::string_view child_scope = xml_prefixed ? scope : ns;
  write_attributes(out, el);
  const auto& nodes = el.nodes();
  if (nodes.empty()) {
    out += "/>";
    return;
  }
  out += '>';
  for (const Node& node : nodes) {
    if (const auto* text = std::get_if<std::string>(&node)) {
      escape(out, *text, kText);
    } else {
      write_element(out, std::get<Element>(node), child_scope, remapped ? remap_from : std::string_view(), remap_to);
    }
  }
  out += "</";
  if (xml_prefixed) {
    out += "xml:";
  }
  out += el.name();
  out += '>';
}

} // namespace

void escape_text(std::string& out, std::string_view s) {
  escape(out, s, kText);
}

void escape_attr(std::string& out, std::string_view s) {
  escape(out, s, kAttr);
}

void serialize(std::string& out, const Element& el, std::string_view parent_ns) {
  // RFC 6120 §4.8.3: a stanza travels in the content namespace of the stream it is written to.
  const bool switch_ns = is_content_ns(el.ns()) && is_content_ns(parent_ns) && el.ns() != parent_ns;
  write_element(out, el, parent_ns, switch_ns ? std::string_view(el.ns()) : std::string_view(), parent_ns);
}

std::string to_string(const Element& el, std::string_view parent_ns) {
  std::string out;
  serialize(out, el, parent_ns);
  return out;
}

} // namespace cg::xml
