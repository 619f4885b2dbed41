// XEP-0313: Message Archive Management 1.1.1 (urn:xmpp:mam:2 and urn:xmpp:mam:2#extended), XEP-0441 (Message
// Archive Management Preferences) 0.2.0 and XEP-0359 (Unique and Stable Stanza IDs) 0.7.0 — the "mam" module.
//
// Every chat and normal message with content to or from a local user is archived in that user's archive store
// "mam" (outgoing at Route::Pre, incoming at Route::Bare / Route::Full), and the recipient's copy carries
// <stanza-id by='user@host'/> with the archive id. The user queries the archive with a data form and RSM paging;
// queries run on the storage worker.
#pragma once

#include "server/api/dataforms.hpp"
#include "server/api/module.hpp"
#include "server/api/rsm.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace cg::xep::mam {

inline constexpr std::string_view ns = "urn:xmpp:mam:2";
inline constexpr std::string_view ns_extended = "urn:xmpp:mam:2#extended";
inline constexpr std::string_view ns_sid = "urn:xmpp:sid:0";
inline constexpr std::string_view ns_forward = "urn:xmpp:forward:0";
inline constexpr std::string_view ns_delay = "urn:xmpp:delay";
inline constexpr std::string_view ns_hints = "urn:xmpp:hints";
inline constexpr std::string_view store_name = "mam";
inline constexpr std::string_view prefs_store = "mam_prefs";
// Stanza handler priorities: archive (and add the <stanza-id/>) after modules that may refuse a message (blocking),
// before carbons (whose copies carry the id) and offline storage; the outgoing <stanza-id/> is removed again last.
inline constexpr int archive_priority = -50;
inline constexpr int strip_priority = -1000;

// XEP-0334 hint present (<no-store/>, <no-permanent-store/>, <store/>, <no-copy/>).
bool has_hint(const api::Element& message, std::string_view hint);
// XEP-0313 §5.1.1: "a server SHOULD include in a user archive all of the messages a user sends or receives of type
// 'normal' or 'chat' that contain a <body> element" — plus end-to-end encrypted payloads (which carry no readable
// body) and messages with a XEP-0334 <store/> hint; never <no-store/> or <no-permanent-store/>, never a carbon copy
// or a MAM result.
bool archivable(const api::Element& message);

// XEP-0441 preferences.
struct Prefs {
  enum class Default { Always, Never, Roster };
  Default default_mode = Default::Always;
  std::vector<std::string> always; // JIDs as given (normalised)
  std::vector<std::string> never;
  bool operator==(const Prefs&) const = default;

  static std::variant<Prefs, api::StanzaError> parse(const api::Element& prefs);
  api::Element to_element() const;
  // XEP-0441 §2.4 (JID matching): a listed JID with a resource is compared with the target as it is, a bare one with
  // the target's bare JID. nullopt when neither list names the target (the default decides); 'never' wins.
  std::optional<bool> listed(const api::Jid& target) const;
};
std::string_view to_string(Prefs::Default d);

// An archive query (XEP-0313 §4): the form's filters, RSM and flip-page.
struct Query {
  std::string queryid;
  std::optional<api::Jid> with;
  std::optional<std::int64_t> start; // microseconds
  std::optional<std::int64_t> end;
  std::optional<std::string> after_id;
  std::optional<std::string> before_id;
  std::vector<std::string> ids;
  api::rsm::Request rsm;
  bool flip_page = false;

  // Errors: a malformed form or <set/> → bad-request; a field this server does not know → feature-not-implemented
  // (XEP-0313 §4.1.5 "If a client includes a form field that the server does not recognise, the server MUST respond
  // with a 'feature-not-implemented' error"); a value that is not of its field's type → not-acceptable (XEP-0004 §4).
  static std::variant<Query, api::StanzaError> parse(const api::Element& query);
};

// The query form of XEP-0313 §4.1.5 (the answer to an IQ get of <query/>).
api::dataforms::Form query_form();

std::unique_ptr<api::Module> make_module();

} // namespace cg::xep::mam
