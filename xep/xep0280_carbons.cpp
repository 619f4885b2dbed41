// XEP-0280: Message Carbons 1.0.1 (2021-12-26), XEP-0297: Stanza Forwarding 1.0, XEP-0334: Message Processing Hints
// (<no-copy/>).
//
// Which resource got the original follows the router's RFC 6121 rules: a message to the bare JID reaches every
// available resource with non-negative priority (§8.5.2.1.1), a message to a bound full JID only that resource. The
// copies go to the other carbons-enabled resources of the account.
#include "xep/xep0280_carbons.hpp"

#include "xep/xep0160_offline.hpp"
#include "xep/xep0313_mam.hpp"

#include <mutex>
#include <unordered_set>

namespace cg::xep::carbons {

using api::Element;
using api::Flow;
using api::IqReply;
using api::Jid;

bool is_carbon(const Element& message) {
  return message.child("received", ns) != nullptr || message.child("sent", ns) != nullptr;
}

namespace {

// XEP-0045 §7.8.2 mediated invitation: <x xmlns='http://jabber.org/protocol/muc#user'><invite/></x>.
bool is_mediated_invitation(const Element& message) {
  const Element* x = message.child("x", ns_muc_user);
  return x != nullptr && x->child("invite", ns_muc_user) != nullptr;
}

bool has_child_ns(const Element& message, std::string_view child_ns) {
  return message.child_ns(child_ns) != nullptr;
}

} // namespace

bool eligible(const Element& message, Direction direction) {
  // XEP-0280 §7: "To exclude a <message/> from being forwarded to other Carbons-enabled resources, the sending
  // client add a <private/> element"; XEP-0334 §4 <no-copy/>: "should not be copied to addresses other than the one
  // to which it is addressed, for example through Message Carbons".
  if (message.child("private", ns) != nullptr || mam::has_hint(message, "no-copy")) {
    return false;
  }
  // A copy is never copied again (that would loop between resources).
  if (is_carbon(message)) {
    return false;
  }
  const auto type = offline::message_type(message);
  // §6: "A <message/> of type "groupchat" SHOULD NOT be carbon-copied." An error is eligible only "if it was sent in
  // response to a <message/> that was eligible for carbons delivery" — which needs tracking this server does not
  // do ("it is unlikely to be generally appropriate for most implementations"): errors are not copied.
  if (type == "groupchat" || type == "error" || type == "headline") {
    return false;
  }
  // §6 MUC rules: "A <message/> containing a Mediated Invitation SHOULD be carbon-copied"; "A private <message/>
  // from a MUC participant (received from a full JID) to a local user SHOULD NOT be carbon-copied"; "A private
  // <message/> from a local user to a MUC participant (sent to a full JID) SHOULD be carbon-copied".
  if (message.child("x", ns_muc_user) != nullptr) {
    return is_mediated_invitation(message) || direction == Direction::Sent;
  }
  // "A <message/> containing a Direct MUC Invitation (XEP-0249) SHOULD be carbon-copied."
  if (message.child("x", "jabber:x:conference") != nullptr) {
    return true;
  }
  // "A <message/> is eligible for carbons delivery if it is of type "chat"" / "of type "normal" and it contains a
  // <body> element".
  if (type == "chat") {
    return true;
  }
  if (message.child("body", message.ns()) != nullptr) {
    return true;
  }
  // "... if it contains payload elements typically used in IM (e.g. Chat State Notifications (XEP-0085), Message
  // Delivery Receipts (XEP-0184) or Chat Markers (XEP-0333))".
  return has_child_ns(message, "http://jabber.org/protocol/chatstates") || has_child_ns(message, "urn:xmpp:receipts") ||
         has_child_ns(message, "urn:xmpp:chat-markers:0");
}

Element wrap(const Element& message, Direction direction, const Jid& user, const Jid& to) {
  Element copy("message", std::string(api::ns::client));
  // §8: "the 'from' attribute MUST be the Carbons-enabled user's bare JID ... and the 'to' attribute MUST be the
  // full JID of the resource receiving the copy"; "The wrapping message SHOULD maintain the same 'type' attribute".
  copy.set_attr("from", user.bare_str());
  copy.set_attr("to", to.str());
  if (message.has_attr("type")) {
    copy.set_attr("type", std::string(message.attr("type")));
  }
  Element original = message;
  offline::to_client_namespace(original);
  // "The content of the wrapping message MUST contain a <received/> element qualified by the namespace
  // "urn:xmpp:carbons:2", which itself contains a <forwarded/> element qualified by the namespace
  // "urn:xmpp:forward:0" that contains the original <message/>" (§9: <sent/> likewise).
  Element& wrapper = copy.add_child(direction == Direction::Received ? "received" : "sent", std::string(ns));
  wrapper.add_child("forwarded", std::string(ns_forward)).add(std::move(original));
  return copy;
}

namespace {

struct State {
  explicit State(api::ModuleContext& c) : ctx(c) {}
  api::ModuleContext& ctx;
  std::mutex mutex;
  std::unordered_set<Jid> enabled; // full JIDs
};

// Sends a copy to each carbons-enabled session of `user` for which `skip` is false.
template <class Skip>
void send_copies(State& st, const Element& message, Direction direction, const Jid& user, Skip skip) {
  std::vector<Jid> targets;
  {
    auto sessions = st.ctx.sessions(user);
    std::lock_guard lock(st.mutex);
    for (const auto& s : sessions) {
      if (st.enabled.contains(s.jid) && !skip(s)) {
        targets.push_back(s.jid);
      }
    }
  }
  for (const auto& target : targets) {
    st.ctx.send(wrap(message, direction, user, target));
  }
}

// What the server re-sends or generates (offline delivery, copies, archive results) is not copied.
bool server_resend(State& st, const api::StanzaEvent& ev) {
  return offline::is_offline_delivery(ev.stanza, ev.origin, st.ctx.host());
}

class CarbonsModule final : public api::Module {
public:
  api::ModuleInfo info() const override {
    return {"carbons",
            "Message carbons: every carbons-enabled device of a user sees both sides of the user's conversations",
            {{"XEP-0280", "1.0.1", "complete", "errors are not copied (§6 needs message tracking)"},
             {"XEP-0334", "0.3.0", "partial",
              "<no-copy/> for carbons; <no-store/> and <no-permanent-store/> in "
              "offline storage and the archive"}},
            {},
            {},
            true};
  }

  void load(api::ModuleContext& ctx) override {
    auto st = std::make_shared<State>(ctx);
    // §3: "An entity advertises support for this protocol by including the "urn:xmpp:carbons:2" feature".
    ctx.add_feature(std::string(ns));

    auto toggle = [st](bool enable) {
      return [st, enable](const api::IqRequest& req) -> boost::asio::awaitable<IqReply> {
        // §4.1 / §5.1: <not-allowed/> "if the request is from a client that is not hosted on this server" (or is
        // about another account).
        if (req.origin.kind != api::OriginKind::Client || req.from.bare() != req.to || !req.from.has_resource()) {
          co_return IqReply::error("not-allowed");
        }
        {
          std::lock_guard lock(st->mutex);
          // §10.1: "The server SHOULD NOT treat multiple enable requests (without an intermediate disable request)
          // as an error" — enabling twice (or disabling twice) is simply a result.
          if (enable) {
            st->enabled.insert(req.from);
          } else {
            st->enabled.erase(req.from);
          }
        }
        co_return IqReply::result();
      };
    };
    ctx.on_iq(api::IqScope::Account, api::IqType::Set, std::string(ns), "enable", toggle(true));
    ctx.on_iq(api::IqScope::Account, api::IqType::Set, std::string(ns), "disable", toggle(false));
    ctx.on_session(api::SessionEventKind::Closed, [st](const api::SessionEvent& ev) {
      std::lock_guard lock(st->mutex);
      st->enabled.erase(ev.jid);
    });

    // §9 (sent): "delivers a forwarded copy to each Carbons-enabled resource for the matching bare JID sender,
    // excluding the sending client".
    ctx.on_stanza(
        api::StanzaKind::Message, api::Route::Pre,
        [st](api::StanzaEvent& ev) {
          const Jid user = ev.from.bare();
          const Jid to = ev.to.empty() ? user : ev.to;
          // A message to the own account is copied as it arrives (as received), once.
          if (to.bare() == user || !eligible(ev.stanza, Direction::Sent)) {
            return Flow::Continue;
          }
          send_copies(*st, ev.stanza, Direction::Sent, user,
                      [&](const api::SessionInfo& s) { return s.jid == ev.from; });
          return Flow::Continue;
        },
        priority);

    // §8 (received): "delivers a forwarded copy to each Carbons-enabled resource for the matching bare JID
    // recipient that did not receive it under the RFC 6121 delivery rules".
    auto received = [st](api::StanzaEvent& ev, bool to_full) {
      const bool copy = !server_resend(*st, ev) && eligible(ev.stanza, Direction::Received);
      if (ev.stanza.child("private", ns) != nullptr) {
        // §7: the receiving server "SHOULD remove the <private/> element before delivering to the recipient".
        ev.stanza.remove_children("private", ns);
      }
      if (!copy) {
        return Flow::Continue;
      }
      const Jid user = ev.to.bare();
      send_copies(*st, ev.stanza, Direction::Received, user, [&](const api::SessionInfo& s) {
        if (s.jid == ev.from) {
          return true; // the sender's own resource (a message to its own account)
        }
        // §8: "The receiving server MUST NOT send a forwarded copy to the client(s) the original <message/> stanza
        // was addressed to, as these recipients receive the original <message/> stanza."
        if (to_full) {
          return s.jid == ev.to;
        }
        return s.available && s.priority >= 0;
      });
      return Flow::Continue;
    };
    ctx.on_stanza(
        api::StanzaKind::Message, api::Route::Bare, [received](api::StanzaEvent& ev) { return received(ev, false); },
        priority);
    ctx.on_stanza(
        api::StanzaKind::Message, api::Route::Full, [received](api::StanzaEvent& ev) { return received(ev, true); },
        priority);
  }
};

} // namespace

std::unique_ptr<api::Module> make_module() {
  return std::make_unique<CarbonsModule>();
}

} // namespace cg::xep::carbons
