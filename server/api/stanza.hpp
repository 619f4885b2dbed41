// Stanza helpers shared by the core and the modules: kinds, error replies (RFC 6120 §8.3), IQ results.
#pragma once

#include "server/api/jid.hpp"
#include "server/xml/element.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace cg::api {

using xml::Element;
namespace ns = xml::ns;

enum class StanzaKind { Message, Presence, Iq, Other };
StanzaKind kind_of(const Element& stanza);

enum class ErrorType { Auth, Cancel, Continue, Modify, Wait };
std::string_view error_type_name(ErrorType t);
// The type RFC 6120 §8.3.3 gives each defined condition (cancel for an unknown one).
ErrorType default_error_type(std::string_view condition);
// True for the conditions RFC 6120 §8.3.3 defines.
bool is_stanza_error_condition(std::string_view condition);

struct StanzaError {
  std::string condition = "undefined-condition";
  std::string text;
  std::optional<ErrorType> type; // default: default_error_type(condition)
  std::string by;                // the JID that generated the error, if worth telling
  // RFC 6120 §8.3.4: an application-specific condition, e.g. XEP-0050's <bad-sessionid
  // xmlns='http://jabber.org/protocol/commands'/>; it goes after the defined condition and the text.
  std::optional<Element> application;

  static StanzaError make(std::string condition, std::string text = {}) {
    StanzaError e;
    e.condition = std::move(condition);
    e.text = std::move(text);
    return e;
  }
  // With an application-specific condition <name xmlns=ns/>.
  static StanzaError make(std::string condition, Element application, std::string text = {}) {
    StanzaError e = make(std::move(condition), std::move(text));
    e.application = std::move(application);
    return e;
  }
  ErrorType effective_type() const { return type ? *type : default_error_type(condition); }
  // The <error/> child element.
  Element to_element() const;
};

// An error reply to `stanza`: same kind and id, 'to' and 'from' swapped, type='error', the <error/> child.
// RFC 6120 §8.3.1: "An entity that receives an error stanza MUST NOT respond to the stanza with a further error
// stanza" — callers must not bounce an error; make_error_reply asserts nothing, is_error() tells.
Element make_error_reply(const Element& stanza, const StanzaError& error);
Element make_error_reply(const Element& stanza, std::string condition, std::string text = {});
bool is_error(const Element& stanza);

// <iq type='result'/> for an IQ request, with an optional payload.
Element make_iq_result(const Element& iq, std::optional<Element> payload = std::nullopt);

// Reads the <error/> child of an error stanza: its condition, text ("" when absent) and application-specific
// condition (the first child in another namespace).
StanzaError parse_error(const Element& stanza);

} // namespace cg::api
