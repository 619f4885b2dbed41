// The summary command's text handling (issue 6), pure and without I/O: the transcript of one conversation as the
// model sees it, the prompt around it, and the sanitation of what the model answers.
//
// Prompt-injection defence (the transcript is other people's text, and some of it is hostile):
//   - the transcript sits between two markers made of a per-request random token, which no message can guess; any
//     occurrence of the token inside a message is removed anyway;
//   - every message is one line, "[mN] <time> <sender>: <text>": newlines inside a message become " / ", so a
//     message cannot forge a line of its own;
//   - invisible Unicode (zero-width characters, bidi controls, tag characters, other format and control characters)
//     is removed from messages and from the answer;
//   - the system prompt says that the text between the markers is data to summarise, never instructions;
//   - answer lines that cite a reference [mN] the transcript did not have are dropped.
// End-to-end encrypted messages (OMEMO, OpenPGP, legacy PGP, anything with a XEP-0380 <encryption/>) are never put
// in a transcript: they are counted, so the result can say how many were left out.
#pragma once

#include "server/api/jid.hpp"
#include "server/api/stanza.hpp"
#include "storage/store.hpp"

#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace cg::summarizer {

// The namespaces that mark a message as end-to-end encrypted.
inline constexpr std::string_view ns_omemo_legacy = "eu.siacs.conversations.axolotl";
inline constexpr std::string_view ns_omemo2 = "urn:xmpp:omemo:2";
inline constexpr std::string_view ns_openpgp = "urn:xmpp:openpgp:0";
inline constexpr std::string_view ns_legacy_pgp = "jabber:x:encrypted";
inline constexpr std::string_view ns_eme = "urn:xmpp:eme:0"; // XEP-0380 Explicit Message Encryption

// Whether a message carries end-to-end encrypted content (a child in one of the namespaces above).
bool is_encrypted(const api::Element& message);

// `text` without invisible characters: zero-width and bidi controls (U+200B–U+200F, U+202A–U+202E, U+2060–U+2064,
// U+2066–U+2069, U+FEFF, U+061C, U+180E, U+00AD), tag characters (U+E0000–U+E007F), variation selectors, and C0/C1
// controls other than tab and newline. Invalid UTF-8 bytes are removed too.
std::string strip_invisible(std::string_view text);

struct TranscriptLine {
  std::string ref;   // "m1", "m2", … in time order
  std::int64_t when; // microseconds since the epoch
  bool mine;         // sent by the archive's owner
  std::string text;  // cleaned, on one line
};

struct Transcript {
  std::string with; // the correspondent's bare JID
  std::vector<TranscriptLine> lines;
  std::size_t encrypted = 0;      // end-to-end encrypted messages left out
  std::size_t without_body = 0;   // messages without a (non-empty) body left out
  std::size_t dropped_oldest = 0; // messages left out because the transcript would not fit the budget
  std::string token;              // the per-request random marker token
  std::set<std::string> refs;     // the refs of `lines`

  std::int64_t first_when() const { return lines.empty() ? 0 : lines.front().when; }
  std::int64_t last_when() const { return lines.empty() ? 0 : lines.back().when; }
  std::string begin_marker() const { return "<<<TRANSCRIPT-" + token + "-BEGIN>>>"; }
  std::string end_marker() const { return "<<<TRANSCRIPT-" + token + "-END>>>"; }
  // The lines between the markers, as the model receives them.
  std::string render() const;
};

// Builds the transcript of `owner`'s archive items with `with` (bare JID): items with another 'with', errors,
// encrypted messages and messages without a body are left out; the rest sorted by time (archive order for equal
// times). `token` is the marker token (random_token() in production). When `max_chars` is not 0, the oldest
// messages are left out until the rendered lines fit it.
Transcript build_transcript(const std::vector<storage::ArchiveItem>& items, const api::Jid& owner,
                            const std::string& with, std::string token, std::size_t max_chars = 0);

// A token of 24 random characters [A-Za-z0-9] from the OS's random source.
std::string random_token();

enum class Style { Brief, Standard, Detailed, ActionItems };
std::string_view to_string(Style s);

struct Prompt {
  std::string system;
  std::string user;
};
// The system prompt (instructions, the markers, the style and language) and the user message (the marked
// transcript).
Prompt build_prompt(const Transcript& t, Style style, const std::string& language);

// The model's answer as lines for the result form: invisible characters removed, Markdown heading marks ('#')
// removed, empty lines and lines citing a reference not in `refs` dropped, the markers removed.
std::vector<std::string> sanitize_output(std::string_view answer, const std::set<std::string>& refs,
                                         std::string_view token = {});

} // namespace cg::summarizer
