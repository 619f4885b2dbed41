// An XML element tree for stanzas: names and namespaces resolved, text and child elements in document order.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace cg::xml {

// Well-known namespaces, shared by the core and the modules.
namespace ns {
inline constexpr std::string_view client = "jabber:client";
inline constexpr std::string_view server = "jabber:server";
inline constexpr std::string_view streams = "http://etherx.jabber.org/streams";
inline constexpr std::string_view stream_errors = "urn:ietf:params:xml:ns:xmpp-streams";
inline constexpr std::string_view stanza_errors = "urn:ietf:params:xml:ns:xmpp-stanzas";
inline constexpr std::string_view tls = "urn:ietf:params:xml:ns:xmpp-tls";
inline constexpr std::string_view sasl = "urn:ietf:params:xml:ns:xmpp-sasl";
inline constexpr std::string_view bind = "urn:ietf:params:xml:ns:xmpp-bind";
inline constexpr std::string_view session = "urn:ietf:params:xml:ns:xmpp-session";
inline constexpr std::string_view xml = "http://www.w3.org/XML/1998/namespace";
inline constexpr std::string_view sasl_cb = "urn:xmpp:sasl-cb:0";
} // namespace ns

struct Attribute {
  // "to", "xml:lang"; an attribute in another namespace is named "{uri}local".
  std::string name;
  std::string value;

  bool operator==(const Attribute& other) const = default;
};

class Element;
// A child node: an element or a run of character data (unescaped).
using Node = std::variant<Element, std::string>;

class Element {
public:
  Element() = default;
  explicit Element(std::string name, std::string ns = {}) : name_(std::move(name)), ns_(std::move(ns)) {}

  const std::string& name() const { return name_; }
  const std::string& ns() const { return ns_; }
  void set_name(std::string name) { name_ = std::move(name); }
  void set_ns(std::string ns) { ns_ = std::move(ns); }
  bool is(std::string_view name, std::string_view ns) const { return name_ == name && ns_ == ns; }

  // Attributes. attr() returns "" when absent; find_attr() tells absent from empty.
  const std::vector<Attribute>& attrs() const { return attrs_; }
  std::string_view attr(std::string_view name) const;
  const std::string* find_attr(std::string_view name) const;
  bool has_attr(std::string_view name) const { return find_attr(name) != nullptr; }
  Element& set_attr(std::string_view name, std::string value);
  void remove_attr(std::string_view name);

  // Children, in document order.
  const std::vector<Node>& nodes() const { return nodes_; }
  std::vector<Node>& nodes() { return nodes_; }
  // Appends a child element and returns a reference to it (valid until the next change of this element's children).
  Element& add(Element child);
  // Appends a new child element; its namespace defaults to this element's.
  Element& add_child(std::string name, std::string ns = {});
  // Appends a child <name>text</name>.
  Element& add_text_child(std::string name, std::string text, std::string ns = {});
  void add_text(std::string text);
  // First child element with this name (and namespace; empty = this element's namespace), or nullptr.
  const Element* child(std::string_view name, std::string_view ns = {}) const;
  Element* child(std::string_view name, std::string_view ns = {});
  // First child element of any name in this namespace, or nullptr.
  const Element* child_ns(std::string_view ns) const;
  // First child element, whatever its name.
  const Element* first_child() const;
  std::vector<const Element*> children() const;
  std::vector<const Element*> children(std::string_view name, std::string_view ns = {}) const;
  std::size_t element_count() const;
  void remove_children(std::string_view name, std::string_view ns = {});
  void clear() { nodes_.clear(); }
  // Concatenated character data of the direct text children.
  std::string text() const;
  // Text of the first child element <name/>, or "" when absent.
  std::string child_text(std::string_view name, std::string_view ns = {}) const;

  bool operator==(const Element& other) const = default;

private:
  std::string name_;
  std::string ns_;
  std::vector<Attribute> attrs_;
  std::vector<Node> nodes_;
};

} // namespace cg::xml
