// XEP-0059: Result Set Management 1.0: the <set xmlns='http://jabber.org/protocol/rsm'/> element of a request
// (how many items, from where) and of a response (which items were returned, how many there are in all).
//
// The parsers check the syntax only: what a given protocol (e.g. XEP-0313's archive ids) makes of the UIDs is up to
// its handler. A syntax error is a StanzaError (bad-request) that a handler can return as it is.
#pragma once

#include "server/api/stanza.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace cg::api::rsm {

inline constexpr std::string_view ns = "http://jabber.org/protocol/rsm";

// A requesting entity's <set/> (XEP-0059 §2).
struct Request {
  std::optional<std::size_t> max;    // <max/>: page size; 0 = only the count (§2.7)
  std::optional<std::string> after;  // <after>UID</after>: the page after this item (§2.2)
  std::optional<std::string> before; // <before>UID</before> the page before this item; "" (an empty <before/>)
                                     // = the last page (§2.5)
  std::optional<std::size_t> index;  // <index/>: the page starting at this position (§2.6)

  bool last_page() const { return before && before->empty(); }

  // Reads a <set xmlns='http://jabber.org/protocol/rsm'/>. Errors: a <max/> or <index/> that is not a
  // non-negative integer, an empty <after/>, an element repeated.
  static std::variant<Request, StanzaError> parse(const Element& set);
  Element to_element() const;
};

// A responding entity's <set/> (XEP-0059 §2.1): the first and last items of the page and the size of the whole
// result set. An empty page has neither <first/> nor <last/> (§2.7 / §2.5: "<set/> ... with only <count/>").
struct Response {
  std::optional<std::string> first;
  std::optional<std::size_t> first_index; // the 'index' attribute of <first/>
  std::optional<std::string> last;
  std::optional<std::size_t> count;

  static std::variant<Response, StanzaError> parse(const Element& set);
  Element to_element() const;
};

} // namespace cg::api::rsm
