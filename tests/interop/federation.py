#!/usr/bin/python3
"""Federation (s2s) interop driver: real slixmpp clients on two XMPP servers exercise the link between them.

    federation.py --peers DIR                           # every pair of servers recorded in DIR/state.json
    federation.py --peers DIR prosody.test ejabberd.test
    federation.py --ca CA.crt --server prosody.test=127.0.0.2:5222 --server ejabberd.test=127.0.0.3:5222

For each pair (A, B) every scenario runs in both directions, A->B and B->A, each direction with its own accounts
(A's alice talks to B's bob; B's alice to A's bob), and one matrix line per (direction, scenario, result) is printed:

  message           alice@A sends a chat message to bob@B (bare JID); bob receives it, from alice's full JID
  disco-info        alice@A sends disco#info to the domain B; a result with a server/im identity comes back
  version           alice@A asks B for jabber:iq:version; a result with a name comes back
  ping              alice@A pings the domain B (XEP-0199); a result comes back
  no-such-user      alice@A sends a chat message to a user B does not have; an error (service-unavailable or
                    item-not-found) from that JID comes back with the message's id
  subscription      alice@A subscribes to bob@B; bob gets the request, approves; alice gets <subscribed/> and a
                    roster push with subscription "to"
  presence-approval after the approval alice receives bob's current presence (RFC 6121 3.1.5)
  presence-broadcast bob@B changes status; alice receives it; bob goes unavailable; alice receives that too
  presence-probe    a new resource of alice@A logs in; A probes B; it receives bob's presence
  unreachable       alice@A sends a message to a user at unreachable.test (A 127.0.0.9, nothing listens); A bounces
                    it with remote-server-not-found or remote-server-timeout  (one line per sending server)

Rosters are cleaned before and after the presence scenarios, so runs can repeat against the same servers.
Every wait is for an event, bounded with asyncio.wait_for. Exit status 0 only if every line passed.
"""
import argparse
import asyncio
import itertools
import json
import logging
import os
import ssl
import sys
import time
import uuid
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

DEFAULT_USERS = {"alice": "alice-pass", "bob": "bob-pässword"}
UNREACHABLE = "unreachable.test"
STANZA_ERRORS_NS = "urn:ietf:params:xml:ns:xmpp-stanzas"

# Bounds (seconds). The first stanza to a new peer domain waits for DNS, TCP, STARTTLS and authentication.
T_LOGIN = 30
T_S2S = 30
T_UNREACHABLE = 60


class Failure(Exception):
    pass


class Client(slixmpp.ClientXMPP):
    """A logged-in account that records every message and presence it receives, and every roster push."""

    def __init__(self, jid, password, cafiles, address):
        super().__init__(jid, password)
        self.address = address
        self.ssl_context = ssl.create_default_context(cafile=cafiles[0])  # only the test CAs, no system ones
        for f in cafiles[1:]:
            self.ssl_context.load_verify_locations(cafile=f)
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0092")
        self.register_plugin("xep_0199")
        # Subscription requests are answered by the test, never automatically.
        self.roster.auto_authorize = None
        self.roster.auto_subscribe = False
        self.inbox = []          # ("message"|"presence"|"roster", stanza)
        self._new = asyncio.Event()
        loop = asyncio.get_event_loop()
        self.started = loop.create_future()
        self.register_handler(Callback("capture message", MatchXPath("{jabber:client}message"),
                                       lambda s: self._push("message", s)))
        self.register_handler(Callback("capture presence", MatchXPath("{jabber:client}presence"),
                                       lambda s: self._push("presence", s)))
        self.add_event_handler("roster_update", lambda iq: self._push("roster", iq))
        self.add_event_handler("session_start", self._on_start)
        self.add_event_handler("failed_auth", lambda _: self._fail("authentication failed"))
        self.add_event_handler("connection_failed", lambda e: self._fail(f"connection failed: {e}"))

    def _push(self, kind, stanza):
        self.inbox.append((kind, stanza))
        self._new.set()

    def _fail(self, why):
        if not self.started.done():
            self.started.set_exception(Failure(f"{self.boundjid}: {why}"))

    async def _on_start(self, _):
        try:
            await self.get_roster(timeout=T_LOGIN)
            self.send_presence()
            # The answer proves the server has processed the initial presence sent before it.
            await self.plugin["xep_0199"].send_ping(self.boundjid.domain, timeout=T_LOGIN)
            if not self.started.done():
                self.started.set_result(True)
        except Exception as e:  # noqa: BLE001 - reported through the future
            self._fail(repr(e))

    def mark(self):
        return len(self.inbox)

    async def expect(self, what, kind, pred, since, timeout):
        """The first stanza of KIND received at or after index SINCE for which PRED holds; Failure after TIMEOUT."""
        i = since

        async def scan():
            nonlocal i
            while True:
                while i < len(self.inbox):
                    k, s = self.inbox[i]
                    i += 1
                    if k == kind and pred(s):
                        return s
                self._new.clear()
                await self._new.wait()
        try:
            return await asyncio.wait_for(scan(), timeout)
        except asyncio.TimeoutError:
            got = [f"{k}:{s}" for k, s in self.inbox[since:]][-6:]
            raise Failure(f"{self.boundjid.bare}: no {what} within {timeout}s; last received: {got}") from None

    async def remove_contact(self, jid):
        query = ET.fromstring(f'<query xmlns="jabber:iq:roster"><item jid="{jid}" subscription="remove"/></query>')
        try:
            await self.make_iq_set(sub=query).send(timeout=T_S2S)
        except IqError as e:
            if e.condition != "item-not-found":
                raise


def error_condition(stanza):
    err = stanza.xml.find("{jabber:client}error")
    if err is None:
        return None
    for child in err:
        if child.tag.startswith("{" + STANZA_ERRORS_NS + "}") and not child.tag.endswith("}text"):
            return child.tag.split("}", 1)[1]
    return None


def token():
    return uuid.uuid4().hex[:10]


# ----------------------------------------------------------------------------------------------------------------
# Scenarios: each takes (alice on A, bob on B, context) and raises Failure (or returns a short note)

async def first_of(*awaitables):
    """The result of whichever finishes first (its Failure propagates); the others are cancelled."""
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        return done.pop().result()
    finally:
        for t in tasks:
            t.cancel()


async def sc_message(alice, bob, ctx):
    t = token()
    body = f"federated hello {t} ✓"
    since, a_since = bob.mark(), alice.mark()
    msg = alice.make_message(mto=bob.boundjid.bare, mbody=body, mtype="chat")
    msg["id"] = f"msg-{t}"
    msg.send()

    async def bounced():
        err = await alice.expect("error", "message", lambda s: s["type"] == "error" and s["id"] == f"msg-{t}",
                                 a_since, T_S2S + 1)
        raise Failure(f"bounced to the sender: {error_condition(err)} {err['error']['text']}".rstrip())
    # fail fast (rather than at the deadline) when the sending server bounces the message
    m = await first_of(bob.expect("chat message", "message",
                                  lambda s: s["type"] == "chat" and s["body"] == body, since, T_S2S), bounced())
    if m["from"] != alice.boundjid:
        raise Failure(f"from {m['from']}, expected {alice.boundjid}")
    if m["to"].bare != bob.boundjid.bare:
        raise Failure(f"to {m['to']}")


async def sc_disco_info(alice, bob, ctx):
    domain = bob.boundjid.domain
    try:
        info = await alice.plugin["xep_0030"].get_info(jid=domain, timeout=T_S2S)
    except IqError as e:
        raise Failure(f"error {e.condition} {e.text}") from None
    except IqTimeout:
        raise Failure(f"no answer within {T_S2S}s") from None
    if info["from"] != domain:
        raise Failure(f"answer from {info['from']}")
    identities = info["disco_info"]["identities"]
    if not any(cat == "server" and typ == "im" for cat, typ, *_ in identities):
        raise Failure(f"identities {identities}")
    return f"{len(info['disco_info']['features'])} features"


async def sc_version(alice, bob, ctx):
    domain = bob.boundjid.domain
    try:
        r = await alice.plugin["xep_0092"].get_version(domain, timeout=T_S2S)
    except IqError as e:
        raise Failure(f"error {e.condition} {e.text}") from None
    except IqTimeout:
        raise Failure(f"no answer within {T_S2S}s") from None
    name = r["software_version"]["name"]
    if not name:
        raise Failure(f"no name in {r}")
    return f"{name} {r['software_version']['version']}"


async def sc_ping(alice, bob, ctx):
    try:
        await alice.plugin["xep_0199"].send_ping(bob.boundjid.domain, timeout=T_S2S)
    except IqError as e:
        raise Failure(f"error {e.condition} {e.text}") from None
    except IqTimeout:
        raise Failure(f"no answer within {T_S2S}s") from None


async def _expect_bounce(alice, to, conditions, timeout):
    t = token()
    since = alice.mark()
    msg = alice.make_message(mto=to, mbody=f"should bounce {t}", mtype="chat")
    msg["id"] = f"bounce-{t}"
    msg.send()
    err = await alice.expect(f"error reply to {to}", "message",
                             lambda s: s["type"] == "error" and s["id"] == f"bounce-{t}", since, timeout)
    cond = error_condition(err)
    if err["from"].bare != to and err["from"] != to.split("@")[-1]:
        raise Failure(f"error from {err['from']}, expected {to}")
    if cond not in conditions:
        raise Failure(f"condition {cond}, expected one of {conditions}")
    return cond


async def sc_no_such_user(alice, bob, ctx):
    to = f"nosuchuser-{token()}@{bob.boundjid.domain}"
    return await _expect_bounce(alice, to, ("service-unavailable", "item-not-found"), T_S2S)


async def sc_unreachable(alice, ctx):
    to = f"nobody-{token()}@{UNREACHABLE}"
    return await _expect_bounce(alice, to, ("remote-server-not-found", "remote-server-timeout"), T_UNREACHABLE)


async def clean_rosters(alice, bob):
    await alice.remove_contact(bob.boundjid.bare)
    await bob.remove_contact(alice.boundjid.bare)


async def sc_subscription(alice, bob, ctx):
    await clean_rosters(alice, bob)
    a_since, b_since = alice.mark(), bob.mark()
    ctx["approval_since"] = a_since
    alice.send_presence(pto=bob.boundjid.bare, ptype="subscribe")
    await bob.expect("subscribe request", "presence",
                     lambda s: s["type"] == "subscribe" and s["from"] == alice.boundjid.bare, b_since, T_S2S)
    bob.send_presence(pto=alice.boundjid.bare, ptype="subscribed")
    await alice.expect("subscribed", "presence",
                       lambda s: s["type"] == "subscribed" and s["from"].bare == bob.boundjid.bare, a_since, T_S2S)

    def push_to(iq):
        item = iq["roster"]["items"].get(bob.boundjid.bare)
        return item is not None and item.get("subscription") == "to"
    await alice.expect("roster push subscription=to", "roster", push_to, a_since, T_S2S)
    ctx["subscribed"] = True


async def sc_presence_approval(alice, bob, ctx):
    if not ctx.get("subscribed"):
        raise Failure("subscription failed")
    p = await alice.expect("bob's presence after approval", "presence",
                           lambda s: s["from"] == bob.boundjid and s["type"] in ("available", "chat", "away", "xa",
                                                                                    "dnd"),
                           ctx["approval_since"], T_S2S)
    return f"from {p['from'].resource}"


async def sc_presence_broadcast(alice, bob, ctx):
    if not ctx.get("subscribed"):
        raise Failure("subscription failed")
    status = f"status {token()}"
    since = alice.mark()
    bob.send_presence(pshow="away", pstatus=status)
    await alice.expect("bob's new status", "presence",
                       lambda s: s["from"] == bob.boundjid and s["status"] == status and s["show"] == "away",
                       since, T_S2S)
    since = alice.mark()
    bob.send_presence(ptype="unavailable")
    await alice.expect("bob's unavailable", "presence",
                       lambda s: s["from"] == bob.boundjid and s["type"] == "unavailable", since, T_S2S)
    # available again (messages to bob's bare JID in later runs go to an available resource)
    since = alice.mark()
    bob.send_presence()
    await alice.expect("bob available again", "presence",
                       lambda s: s["from"] == bob.boundjid and s["type"] == "available", since, T_S2S)


async def sc_presence_probe(alice, bob, ctx):
    if not ctx.get("subscribed"):
        raise Failure("subscription failed")
    second = Client(f"{alice.boundjid.bare}/probe-{token()}", ctx["password_of"](alice), ctx["cafiles"],
                    alice.address)
    second.connect(second.address)
    try:
        await asyncio.wait_for(second.started, T_LOGIN)
        p = await second.expect("bob's presence (answer to the probe)", "presence",
                                lambda s: s["from"] == bob.boundjid and s["type"] == "available", 0, T_S2S)
        return f"from {p['from'].resource}"
    finally:
        await disconnect_all([second])


SCENARIOS = [
    ("message", sc_message),
    ("disco-info", sc_disco_info),
    ("version", sc_version),
    ("ping", sc_ping),
    ("no-such-user", sc_no_such_user),
    ("subscription", sc_subscription),
    ("presence-approval", sc_presence_approval),
    ("presence-broadcast", sc_presence_broadcast),
    ("presence-probe", sc_presence_probe),
]


# ----------------------------------------------------------------------------------------------------------------

class Matrix:
    def __init__(self, json_path=None):
        self.rows = []
        self.json_path = json_path

    def add(self, direction, scenario, ok, note, seconds):
        self.rows.append({"direction": direction, "scenario": scenario, "result": "PASS" if ok else "FAIL",
                          "note": note or "", "seconds": round(seconds, 2)})
        print(f"{direction:34} {scenario:19} {'PASS' if ok else 'FAIL'}  {seconds:5.2f}s  {note or ''}",
              flush=True)

    def failed(self):
        return [r for r in self.rows if r["result"] != "PASS"]

    def write(self):
        if self.json_path:
            with open(self.json_path, "w") as f:
                json.dump(self.rows, f, indent=2, ensure_ascii=False)


async def run_scenario(matrix, direction, name, fn, *args):
    t0 = time.monotonic()
    try:
        note = await fn(*args)
        matrix.add(direction, name, True, note, time.monotonic() - t0)
    except Failure as e:
        matrix.add(direction, name, False, str(e), time.monotonic() - t0)
    except Exception as e:  # noqa: BLE001 - an unexpected error is a failed line, not a crashed run
        matrix.add(direction, name, False, f"{type(e).__name__}: {e}", time.monotonic() - t0)


async def login(domain, user, password, cafiles, address):
    c = Client(f"{user}@{domain}/fed-{token()}", password, cafiles, address)
    c.connect(address)
    try:
        await asyncio.wait_for(c.started, T_LOGIN)
    except asyncio.TimeoutError:
        raise Failure(f"{user}@{domain}: no session within {T_LOGIN}s") from None
    return c


async def run_pair(matrix, a, b, servers, users, cafiles, only, unreachable_done):
    """Both directions between domains A and B."""
    clients = {}
    try:
        for domain in (a, b):
            for user in ("alice", "bob"):
                clients[(domain, user)] = await login(domain, user, users[user], cafiles, servers[domain])
    except Failure as e:
        for x, y in ((a, b), (b, a)):
            for name, _ in SCENARIOS:
                if not only or name in only:
                    matrix.add(f"{x} -> {y}", name, False, f"login: {e}", 0)
        await disconnect_all(clients.values())
        return
    passwords = {c.boundjid.bare: users[u] for (_, u), c in clients.items()}
    try:
        for x, y in ((a, b), (b, a)):
            alice, bob = clients[(x, "alice")], clients[(y, "bob")]
            ctx = {"cafiles": cafiles, "password_of": lambda c: passwords[c.boundjid.bare]}
            for name, fn in SCENARIOS:
                if only and name not in only:
                    continue
                await run_scenario(matrix, f"{x} -> {y}", name, fn, alice, bob, ctx)
            if ctx.get("subscribed"):
                try:
                    await clean_rosters(alice, bob)
                except Exception as e:  # noqa: BLE001
                    print(f"# roster cleanup {x} -> {y}: {e!r}", file=sys.stderr)
        for x in (a, b):
            if x not in unreachable_done and (not only or "unreachable" in only):
                unreachable_done.add(x)
                await run_scenario(matrix, f"{x} -> {UNREACHABLE}", "unreachable", sc_unreachable,
                                   clients[(x, "alice")], {})
    finally:
        await disconnect_all(clients.values())


async def disconnect_all(clients):
    # slixmpp replaces its `disconnected` future once it fires: take each one before asking to disconnect
    waits = [c.disconnected for c in clients]
    for c in clients:
        c.disconnect()
    try:
        await asyncio.wait_for(asyncio.gather(*waits, return_exceptions=True), 15)
    except asyncio.TimeoutError:
        print("# some clients did not finish disconnecting within 15s", file=sys.stderr)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", metavar="DIR", help="the peers.py scratch dir (state.json: servers, CA, users)")
    ap.add_argument("--ca", action="append", default=[],
                    help="CA file the clients trust (repeatable; default: the CAs in DIR/state.json)")
    ap.add_argument("--server", action="append", default=[], metavar="DOMAIN=IP:PORT",
                    help="a server's c2s address (repeatable; adds to or overrides state.json)")
    ap.add_argument("--only", action="append", default=[], metavar="SCENARIO",
                    help="run only these scenarios (repeatable): " + ", ".join(
                        [n for n, _ in SCENARIOS] + ["unreachable"]))
    ap.add_argument("--json", help="also write the matrix as JSON to this file")
    ap.add_argument("--debug", action="store_true", help="slixmpp debug logging to stderr")
    ap.add_argument("domains", nargs="*", help="servers to test pairwise (default: all known)")
    return ap.parse_args()


def main():
    args = parse_args()
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.CRITICAL,
                        format="%(asctime)s %(name)s %(message)s")
    servers, users, cafiles = {}, dict(DEFAULT_USERS), list(args.ca)
    if args.peers:
        with open(os.path.join(args.peers, "state.json")) as f:
            st = json.load(f)
        servers.update({d: tuple(addr) for d, addr in st.get("servers", {}).items()})
        users.update(st.get("users", {}))
        cafiles = cafiles or st.get("client_ca_files") or [st["ca_file"]]
    for spec in args.server:
        domain, _, addr = spec.partition("=")
        host, _, port = addr.rpartition(":")
        servers[domain] = (host, int(port))
    if not cafiles:
        sys.exit("need --peers DIR or --ca FILE")
    domains = args.domains or sorted(servers)
    unknown = [d for d in domains if d not in servers]
    if unknown or len(domains) < 2:
        sys.exit(f"need two or more known servers; unknown: {unknown}; known: {sorted(servers)}")
    valid = {n for n, _ in SCENARIOS} | {"unreachable"}
    if set(args.only) - valid:
        sys.exit(f"unknown scenarios {set(args.only) - valid}")

    only = set(args.only)
    if any(n.startswith("presence-") for n in only):
        only.add("subscription")  # the presence scenarios run on the subscription it sets up

    matrix = Matrix(args.json)
    print(f"# federation matrix: {', '.join(domains)}  (clients trust {', '.join(cafiles)})", flush=True)
    loop = asyncio.get_event_loop()
    unreachable_done = set()
    for a, b in itertools.combinations(domains, 2):
        loop.run_until_complete(run_pair(matrix, a, b, servers, users, cafiles, only, unreachable_done))
    matrix.write()
    failed = matrix.failed()
    passed = len(matrix.rows) - len(failed)
    print(f"{passed} passed, {len(failed)} failed")
    return 1 if failed or not matrix.rows else 0


if __name__ == "__main__":
    sys.exit(main())
