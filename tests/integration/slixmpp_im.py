#!/usr/bin/python3
"""Instant messaging features through a real client library: slixmpp (Debian's python3-slixmpp) and its plugins.

Starts chatgroupd on free loopback ports with a fresh data directory, creates two accounts with chatgroupctl, logs
them in over STARTTLS (verifying the server's self-signed certificate) and drives, as a real client would:
  1. rosters and subscriptions (RFC 6121 §2, §3): roster set with name and group, roster pushes, subscribe and
     approve both ways until both rosters say 'both', then a presence change (show, status) reaching the contact;
  2. offline messages (XEP-0160) with <delay/> (XEP-0203), in order, after the recipient logs in again;
  3. message carbons (XEP-0280): received and sent carbons between two resources of one account;
  4. the message archive (XEP-0313) paged with RSM (XEP-0059), checked against everything exchanged above;
  5. the blocking command (XEP-0191): unavailable presence, block push, <service-unavailable/> to the blocked
     sender, nothing delivered, then unblock and delivery again;
  6. vcard-temp (XEP-0054): publish, then read by the contact.
Exits non-zero on any failure. Every wait is bounded and waits for an event, never a fixed sleep.
"""
import argparse
import asyncio
import datetime
import os
import ssl
import sys

import slixmpp
from slixmpp import JID
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

from chatgroup_server import Server as _Server


def Server(chatgroupd, chatgroupctl):
    return _Server(chatgroupd, chatgroupctl, prefix="cg-slix-im-")

TIMEOUT = 10
ALICE = "alice@localhost"
BOB = "bob@localhost"


class Inbox:
    """Every stanza of one kind a client received, in arrival order. wait() takes the first not yet taken one that
    matches a predicate, waiting (bounded) for it to arrive; `seen` keeps everything for "never received" checks."""

    def __init__(self, name):
        self.name = name
        self.pending = []
        self.seen = []
        self.arrived = asyncio.Event()

    def put(self, stanza):
        self.pending.append(stanza)
        self.seen.append(stanza)
        self.arrived.set()

    async def wait(self, pred, what, timeout=TIMEOUT):
        async def first_match():
            while True:
                for i, s in enumerate(self.pending):
                    if pred(s):
                        return self.pending.pop(i)
                self.arrived.clear()
                await self.arrived.wait()

        try:
            return await asyncio.wait_for(first_match(), timeout)
        except asyncio.TimeoutError:
            got = "\n  ".join(str(s) for s in self.pending[-10:]) or "(nothing)"
            raise AssertionError(f"{self.name}: timed out after {timeout}s waiting for {what}; "
                                 f"last stanzas not taken:\n  {got}") from None


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, cafile):
        super().__init__(jid, password)
        self.ssl_context = ssl.create_default_context(cafile=cafile)
        # Subscription requests are answered by the test, explicitly (as a user would): None turns off slixmpp's
        # automatic handling (True would approve and subscribe back, False would refuse).
        self.auto_authorize = None
        self.auto_subscribe = False
        for p in ("xep_0030", "xep_0054", "xep_0059", "xep_0191", "xep_0199", "xep_0203", "xep_0280",
                  "xep_0297", "xep_0313"):
            self.register_plugin(p)
        self.started = asyncio.get_event_loop().create_future()
        tag = JID(jid).resource
        self.messages = Inbox(f"{tag} messages")    # every <message/>, bodies or not (carbons, errors, MAM results)
        self.presences = Inbox(f"{tag} presences")
        self.roster_pushes = Inbox(f"{tag} roster pushes")
        self.iq_sets = Inbox(f"{tag} iq sets")        # blocking pushes
        self.register_handler(Callback("test: every message", MatchXPath("{jabber:client}message"),
                                       self.messages.put))
        self.register_handler(Callback("test: every presence", MatchXPath("{jabber:client}presence"),
                                       self.presences.put))
        self.add_event_handler("roster_update", lambda iq: iq["type"] == "set" and self.roster_pushes.put(iq))
        self.add_event_handler("blocked", self.iq_sets.put)
        self.add_event_handler("unblocked", self.iq_sets.put)
        self.add_event_handler("session_start", self._on_start)
        self.add_event_handler("failed_auth", self._on_failed)

    async def _on_start(self, _):
        try:
            # What a client does at login: fetch the roster (which makes this resource interested in roster
            # pushes, RFC 6121 §2.1.6), then send initial presence.
            await self.get_roster(timeout=TIMEOUT)
            self.send_presence()
            await self.sync()
            if not self.started.done():
                self.started.set_result(True)
        except Exception as e:  # surfaces in the scenario instead of a log line
            if not self.started.done():
                self.started.set_exception(e)

    def _on_failed(self, _):
        if not self.started.done():
            self.started.set_result(False)

    async def sync(self):
        # The answer to a ping proves the server has processed everything this client sent before it.
        await self.plugin["xep_0199"].send_ping("localhost", timeout=TIMEOUT)


async def login(server, jid, password):
    c = Client(jid, password, os.path.join(server.dir, "data", "selfsigned.crt"))
    c.connect(("127.0.0.1", server.port))
    ok = await asyncio.wait_for(c.started, 20)
    assert ok is True, f"{jid}: login failed"
    assert str(c.boundjid) == jid, f"bound {c.boundjid}, asked for {jid}"
    return c


def bare(stanza):
    return stanza["from"].bare


def rtype(stanza):
    """The raw type attribute (slixmpp's presence['type'] reports <show/> for available presence)."""
    return stanza.xml.get("type", "")


def body(stanza):
    b = stanza.xml.find("{jabber:client}body")
    return b.text if b is not None else None


def roster_item(iq, jid):
    items = iq["roster"]["items"]
    return items.get(JID(jid))


def describe(item):
    return None if item is None else {k: item[k] for k in ("name", "subscription", "ask", "groups")}


async def roster_of(client, jid):
    # The whole roster, not "unchanged since the version you hold" (RFC 6121 §2.6.3): forget the version first.
    client.client_roster.version = ""
    r = await client.get_roster(timeout=TIMEOUT)
    return roster_item(r, jid)


async def step_roster_and_presence(alice, bob):
    # RFC 6121 §2.4: add an item with a name and a group; §2.1.6: the server pushes it to interested resources.
    await alice.update_roster(JID(BOB), name="Bobby", groups=["Friends"], timeout=TIMEOUT)
    push = await alice.roster_pushes.wait(lambda iq: roster_item(iq, BOB) is not None, "roster push of bob")
    item = roster_item(push, BOB)
    assert item["name"] == "Bobby" and item["groups"] == ["Friends"] and item["subscription"] == "none", \
        f"roster push after the roster set: {describe(item)}"

    # §3.1.2: outbound subscribe → a roster push with ask='subscribe'; §3.1.3: delivered from the bare JID.
    alice.send_presence(pto=BOB, ptype="subscribe")
    push = await alice.roster_pushes.wait(lambda iq: roster_item(iq, BOB) is not None, "push with ask=subscribe")
    item = roster_item(push, BOB)
    assert item["ask"] == "subscribe" and item["subscription"] == "none" and item["name"] == "Bobby", \
        f"roster push after alice's subscribe: {describe(item)}"
    req = await bob.presences.wait(lambda p: rtype(p) == "subscribe", "alice's subscription request")
    assert str(req["from"]) == ALICE, f"subscription request from {req['from']}, expected the bare {ALICE}"

    # §3.1.5: bob approves → bob's push says 'from', alice gets 'subscribed' (§3.1.6) and a push saying 'to',
    # and bob's server sends alice the presence of bob's available resource.
    bob.send_presence(pto=ALICE, ptype="subscribed")
    push = await bob.roster_pushes.wait(lambda iq: roster_item(iq, ALICE) is not None, "bob's push of alice")
    assert roster_item(push, ALICE)["subscription"] == "from", describe(roster_item(push, ALICE))
    ack = await alice.presences.wait(lambda p: rtype(p) == "subscribed", "'subscribed' from bob")
    assert str(ack["from"]) == BOB, ack
    push = await alice.roster_pushes.wait(lambda iq: roster_item(iq, BOB) is not None, "alice's push 'to'")
    item = roster_item(push, BOB)
    assert item["subscription"] == "to" and item["ask"] == "", f"after approval: {describe(item)}"
    await alice.presences.wait(lambda p: str(p["from"]) == str(bob.boundjid) and rtype(p) == "",
                               "bob's available presence after the approval")

    # The other direction: bob subscribes, alice approves.
    bob.send_presence(pto=ALICE, ptype="subscribe")
    req = await alice.presences.wait(lambda p: rtype(p) == "subscribe", "bob's subscription request")
    assert str(req["from"]) == BOB, req
    alice.send_presence(pto=BOB, ptype="subscribed")
    ack = await bob.presences.wait(lambda p: rtype(p) == "subscribed", "'subscribed' from alice")
    assert str(ack["from"]) == ALICE, ack
    await bob.presences.wait(lambda p: str(p["from"]) == str(alice.boundjid) and rtype(p) == "",
                             "alice's available presence after the approval")
    await alice.roster_pushes.wait(lambda iq: (roster_item(iq, BOB) or {"subscription": ""})["subscription"]
                                   == "both", "alice's push 'both'")
    await bob.roster_pushes.wait(lambda iq: (roster_item(iq, ALICE) or {"subscription": ""})["subscription"]
                                 == "both", "bob's push 'both'")

    # Both rosters, as the server returns them (RFC 6121 §2.1.3), end at 'both'.
    item = await roster_of(alice, BOB)
    assert item is not None and item["subscription"] == "both" and item["ask"] == "" and \
        item["name"] == "Bobby" and item["groups"] == ["Friends"], f"alice's roster item for bob: {describe(item)}"
    item = await roster_of(bob, ALICE)
    assert item is not None and item["subscription"] == "both" and item["ask"] == "", \
        f"bob's roster item for alice: {describe(item)}"

    # RFC 6121 §4.4: a presence change is broadcast to subscribers.
    bob.send_presence(pshow="away", pstatus="out to lunch 🍜")
    p = await alice.presences.wait(lambda p: str(p["from"]) == str(bob.boundjid) and p["show"] == "away",
                                   "bob's presence with <show>away</show>")
    assert rtype(p) == "" and p["status"] == "out to lunch 🍜", f"bob's presence: {p}"


async def step_offline(server, alice, bob):
    bob.disconnect()
    await asyncio.wait_for(bob.disconnected, TIMEOUT)
    gone = await alice.presences.wait(lambda p: str(p["from"]) == str(bob.boundjid) and rtype(p) == "unavailable",
                                      "bob's unavailable presence when his session ends")
    assert gone is not None

    sent_at = datetime.datetime.now(datetime.timezone.utc)
    texts = [f"offline {i} — stored while bob is away" for i in (1, 2, 3)]
    for t in texts:
        alice.send_message(mto=BOB, mbody=t, mtype="chat")
    await alice.sync()  # the three messages are with the server (and stored) before bob is back

    bob1 = await login(server, BOB + "/slix-b1", "bøb-pässwörd")
    got = []
    for i in range(3):
        got.append(await bob1.messages.wait(lambda m: body(m) is not None, f"offline message {i + 1}"))
    now = datetime.datetime.now(datetime.timezone.utc)
    assert [body(m) for m in got] == texts, f"offline messages out of order or wrong: {[body(m) for m in got]}"
    for m in got:
        assert str(m["from"]) == str(alice.boundjid), f"offline message from {m['from']}"
        delay = m.xml.find("{urn:xmpp:delay}delay")
        assert delay is not None, f"offline message without <delay xmlns='urn:xmpp:delay'/>: {m}"
        stamp = m["delay"]["stamp"]
        assert isinstance(stamp, datetime.datetime) and stamp.tzinfo is not None, \
            f"unparsable delay stamp {delay.get('stamp')!r}"
        assert stamp <= now, f"delay stamp {stamp.isoformat()} is in the future (now {now.isoformat()})"
        assert stamp >= sent_at - datetime.timedelta(seconds=1), \
            f"delay stamp {stamp.isoformat()} is before the message was sent ({sent_at.isoformat()})"
    # Delivered once: nothing else with a body arrives before a round trip.
    await bob1.sync()
    extra = [m for m in bob1.messages.pending if body(m) is not None]
    assert not extra, f"more than the three offline messages: {[str(m) for m in extra]}"
    return bob1, texts


async def step_carbons(server, alice, bob1):
    bob2 = await login(server, BOB + "/slix-b2", "bøb-pässwörd")
    await bob1.plugin["xep_0280"].enable(timeout=TIMEOUT)
    await bob2.plugin["xep_0280"].enable(timeout=TIMEOUT)

    # XEP-0280 §6: a message to another resource of the account is copied as <received/>.
    to_r1 = "carbons: to resource 1"
    alice.send_message(mto=bob1.boundjid, mbody=to_r1, mtype="chat")
    m = await bob1.messages.wait(lambda m: body(m) == to_r1, "alice's message on bob's resource 1")
    assert str(m["from"]) == str(alice.boundjid), m
    c = await bob2.messages.wait(lambda m: m.xml.find("{urn:xmpp:carbons:2}received") is not None,
                                 "a received carbon on bob's resource 2")
    # §7: the wrapper comes from the user's bare JID, addressed to the resource.
    assert str(c["from"]) == BOB and str(c["to"]) == str(bob2.boundjid), f"received carbon wrapper: {c}"
    fwd = c["carbon_received"]
    assert fwd["body"] == to_r1 and str(fwd["from"]) == str(alice.boundjid) and \
        str(fwd["to"]) == str(bob1.boundjid), f"forwarded message in the received carbon: {fwd}"

    # §5: a message sent by one resource is copied to the others as <sent/>.
    from_r1 = "carbons: from resource 1"
    bob1.send_message(mto=ALICE, mbody=from_r1, mtype="chat")
    m = await alice.messages.wait(lambda m: body(m) == from_r1, "bob's reply at alice")
    assert str(m["from"]) == str(bob1.boundjid), m
    c = await bob2.messages.wait(lambda m: m.xml.find("{urn:xmpp:carbons:2}sent") is not None,
                                 "a sent carbon on bob's resource 2")
    assert str(c["from"]) == BOB and str(c["to"]) == str(bob2.boundjid), f"sent carbon wrapper: {c}"
    fwd = c["carbon_sent"]
    assert fwd["body"] == from_r1 and str(fwd["from"]) == str(bob1.boundjid) and str(fwd["to"]) == ALICE, \
        f"forwarded message in the sent carbon: {fwd}"

    # Resource 1 took part in both messages itself: it gets no copy of either.
    await bob1.sync()
    copies = [m for m in bob1.messages.seen if m.xml.find("{urn:xmpp:carbons:2}received") is not None or
              m.xml.find("{urn:xmpp:carbons:2}sent") is not None]
    assert not copies, f"resource 1 got carbons of its own conversation: {[str(m) for m in copies]}"
    return bob2, [(ALICE, to_r1), (BOB, from_r1)]


async def step_mam(alice, expected):
    async def all_pages():
        pages = []
        it = alice.plugin["xep_0313"].retrieve(with_jid=JID(BOB), iterator=True, rsm={"max": 2})
        async for page in it:
            pages.append(page)
            assert len(pages) <= 10, "the archive query does not end (paging ignored?)"
        return pages

    pages = await asyncio.wait_for(all_pages(), 20)
    results = [r for p in pages for r in p["mam"]["results"]]
    archived = [r["mam_result"]["forwarded"]["stanza"] for r in results]
    got = [(m["from"].bare, m["body"]) for m in archived]
    # Every one of these messages was delivered (and answered) before the query was sent.
    assert got == expected, f"archive with {BOB} (sender, body), queried after all of them were delivered:\n" \
                            f"  got      {got}\n  expected {expected}"
    sizes = [len(p["mam"]["results"]) for p in pages]
    assert len(pages) >= 2 and all(n <= 2 for n in sizes), f"RSM max=2 not honoured: page sizes {sizes}"
    completes = [p["mam_fin"].xml.get("complete") for p in pages]
    assert completes[-1] in ("true", "1") and all(c not in ("true", "1") for c in completes[:-1]), \
        f"XEP-0313 §4.3 'complete' per page: {completes}"
    counts = [p["mam_fin"]["rsm"]["count"] for p in pages]
    assert all(c in ("", str(len(expected))) for c in counts), \
        f"RSM <count/> per page {counts}, the archive holds {len(expected)} messages with {BOB}"
    stamps = [r["mam_result"]["forwarded"]["delay"]["stamp"] for r in results]
    assert all(isinstance(s, datetime.datetime) for s in stamps), f"results without <delay/>: {stamps}"
    assert stamps == sorted(stamps), f"results not in chronological order: {stamps}"
    ids = [r["mam_result"]["id"] for r in results]
    assert all(ids) and len(set(ids)) == len(ids), f"result ids not unique: {ids}"


async def step_blocking(alice, bob1, bob2):
    blocklist = await bob2.plugin["xep_0191"].get_blocked(timeout=TIMEOUT)  # bob2 is now interested in pushes
    assert list(blocklist["blocklist"]["items"]) == [], f"blocklist at start: {blocklist}"

    await bob1.plugin["xep_0191"].block(JID(ALICE), timeout=TIMEOUT)
    # XEP-0191 §5.3: block push to the resources that asked for the list; unavailable presence to the contact.
    push = await bob2.iq_sets.wait(lambda iq: iq.xml.find("{urn:xmpp:blocking}block") is not None, "block push")
    assert [str(j) for j in push["block"]["items"]] == [ALICE], f"block push: {push}"
    for r in (bob1, bob2):
        await alice.presences.wait(lambda p: str(p["from"]) == str(r.boundjid) and rtype(p) == "unavailable",
                                   f"unavailable presence from {r.boundjid} when bob blocks alice")

    # §5.3: the blocked contact's message is answered with <service-unavailable/> and not delivered.
    blocked = "blocked message — must not arrive"
    alice.send_message(mto=bob1.boundjid, mbody=blocked, mtype="chat")
    err = await alice.messages.wait(lambda m: rtype(m) == "error", "the error answering the blocked message")
    assert err["error"]["condition"] == "service-unavailable" and str(err["from"]) == str(bob1.boundjid), \
        f"answer to the blocked message: {err}"

    await bob1.plugin["xep_0191"].unblock(JID(ALICE), timeout=TIMEOUT)
    push = await bob2.iq_sets.wait(lambda iq: iq.xml.find("{urn:xmpp:blocking}unblock") is not None,
                                   "unblock push")
    assert [str(j) for j in push["unblock"]["items"]] == [ALICE], f"unblock push: {push}"
    # §5.4: the contact gets the user's current presence again.
    for r in (bob1, bob2):
        await alice.presences.wait(lambda p: str(p["from"]) == str(r.boundjid) and rtype(p) == "",
                                   f"available presence from {r.boundjid} after unblocking")

    after = "after unblock"
    alice.send_message(mto=bob1.boundjid, mbody=after, mtype="chat")
    m = await bob1.messages.wait(lambda m: body(m) is not None, "the first message after unblocking")
    assert body(m) == after and str(m["from"]) == str(alice.boundjid), \
        f"first message on bob's resource 1 after the block: {m}"
    await bob2.messages.wait(lambda m: after in str(m), "the carbon of the message after unblocking")
    leaked = [str(m) for c in (bob1, bob2) for m in c.messages.seen if blocked in str(m)]
    assert not leaked, f"the blocked message reached bob: {leaked}"


async def step_vcard(alice, bob1):
    vcard = alice.plugin["xep_0054"].make_vcard()
    vcard["FN"] = "Alice Pleasance Liddell"
    vcard["NICKNAME"] = "alice"
    await alice.plugin["xep_0054"].publish_vcard(vcard, timeout=TIMEOUT)
    r = await bob1.plugin["xep_0054"].get_vcard(JID(ALICE), local=False, cached=False, timeout=TIMEOUT)
    assert r["vcard_temp"]["FN"] == "Alice Pleasance Liddell", f"alice's vCard as bob reads it: {r}"
    nick = r.xml.find("{vcard-temp}vCard/{vcard-temp}NICKNAME")
    assert nick is not None and nick.text == "alice", f"alice's vCard as bob reads it: {r}"


async def scenario(server):
    alice = await login(server, ALICE + "/slix-a", "alice pass")
    bob = await login(server, BOB + "/slix-b", "bøb-pässwörd")

    await step_roster_and_presence(alice, bob)
    print("1. roster, subscriptions, presence: ok")
    bob1, offline_texts = await step_offline(server, alice, bob)
    print("2. offline messages with delay: ok")
    bob2, carbon_msgs = await step_carbons(server, alice, bob1)
    print("3. carbons: ok")
    await step_mam(alice, [(ALICE, t) for t in offline_texts] + carbon_msgs)
    print("4. archive with RSM paging: ok")
    await step_blocking(alice, bob1, bob2)
    print("5. blocking: ok")
    await step_vcard(alice, bob1)
    print("6. vCard: ok")

    for c in (alice, bob1, bob2):
        c.disconnect()
    await asyncio.wait_for(asyncio.gather(alice.disconnected, bob1.disconnected, bob2.disconnected), TIMEOUT)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chatgroupd", required=True)
    ap.add_argument("--chatgroupctl", required=True)
    args = ap.parse_args()
    server = Server(args.chatgroupd, args.chatgroupctl)
    try:
        server.add_user(ALICE, "alice pass")
        server.add_user(BOB, "bøb-pässwörd")
        server.start()
        loop = asyncio.get_event_loop()
        try:
            loop.run_until_complete(asyncio.wait_for(scenario(server), 90))
        finally:  # slixmpp leaves its per-connection filter tasks running; end them quietly
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for t in pending:
                t.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        status = server.stop()
        assert status == 0, f"chatgroupd exited with {status}"
        print("slixmpp: roster, subscriptions, presence, offline, carbons, MAM, blocking, vCard: ok")
        return 0
    except BaseException as e:  # report with the server log for diagnosis
        print(f"FAILED: {e!r}" if not isinstance(e, AssertionError) else f"FAILED: {e}", file=sys.stderr)
        server.stop()
        with open(os.path.join(server.dir, "server.log")) as f:
            sys.stderr.write(f.read()[-5000:])
        return 1
    finally:
        server.cleanup()


if __name__ == "__main__":
    sys.exit(main())
