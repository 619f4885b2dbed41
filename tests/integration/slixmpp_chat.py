#!/usr/bin/python3
"""A second real client library on the same login and message path: slixmpp (Debian's python3-slixmpp).

Starts chatgroupd on free loopback ports with a fresh data directory, creates two accounts with chatgroupctl,
logs both in over STARTTLS with certificate verification against the server's self-signed certificate, sends a
chat message each way (bare and full JID) and checks what arrives, then checks a wrong password is refused.
Exits non-zero on any failure. Every wait is bounded and waits for an event, never a fixed sleep.
"""
import argparse
import asyncio
import os
import ssl
import sys

import slixmpp

from chatgroup_server import Server as _Server


def Server(chatgroupd, chatgroupctl):
    return _Server(chatgroupd, chatgroupctl, prefix="cg-slix-")


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, cafile):
        super().__init__(jid, password)
        self.ssl_context = ssl.create_default_context(cafile=cafile)
        loop = asyncio.get_event_loop()
        self.started = loop.create_future()
        self.messages = asyncio.Queue()
        self.add_event_handler("session_start", self._on_start)
        self.add_event_handler("failed_auth", self._on_failed)
        self.add_event_handler("message", lambda m: self.messages.put_nowait(m))

    async def _on_start(self, _):
        self.send_presence()
        # The answer proves the server has processed the presence sent before it.
        await self.plugin["xep_0199"].send_ping("localhost", timeout=10)
        if not self.started.done():
            self.started.set_result(True)

    def _on_failed(self, _):
        if not self.started.done():
            self.started.set_result(False)


async def scenario(server):
    cafile = os.path.join(server.dir, "data", "selfsigned.crt")
    alice = Client("alice@localhost/slix-a", "alice pass", cafile)
    bob = Client("bob@localhost/slix-b", "bøb-pässwörd", cafile)
    for c in (alice, bob):
        c.register_plugin("xep_0199")
        c.connect(("127.0.0.1", server.port))
    ok = await asyncio.wait_for(asyncio.gather(alice.started, bob.started), 20)
    assert ok == [True, True], f"login results {ok}"
    assert str(alice.boundjid) == "alice@localhost/slix-a", alice.boundjid

    alice.send_message(mto="bob@localhost", mbody="hello from slixmpp ✓", mtype="chat")
    m = await asyncio.wait_for(bob.messages.get(), 10)
    assert m["body"] == "hello from slixmpp ✓", m["body"]
    assert str(m["from"]) == "alice@localhost/slix-a", m["from"]

    bob.send_message(mto="alice@localhost/slix-a", mbody="reply to the full JID", mtype="chat")
    m = await asyncio.wait_for(alice.messages.get(), 10)
    assert m["body"] == "reply to the full JID" and str(m["from"]) == "bob@localhost/slix-b", m

    # Software version of the server through slixmpp's XEP-0092 plugin.
    alice.register_plugin("xep_0092")
    version = await alice.plugin["xep_0092"].get_version("localhost", timeout=10)
    assert version["software_version"]["name"] == "ChatGroup", version

    alice.disconnect()
    bob.disconnect()
    await asyncio.wait_for(asyncio.gather(alice.disconnected, bob.disconnected), 10)

    wrong = Client("alice@localhost/wrong", "not the password", cafile)
    wrong.connect(("127.0.0.1", server.port))
    assert await asyncio.wait_for(wrong.started, 20) is False, "a wrong password must be refused"
    wrong.disconnect()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chatgroupd", required=True)
    ap.add_argument("--chatgroupctl", required=True)
    args = ap.parse_args()
    server = Server(args.chatgroupd, args.chatgroupctl)
    try:
        server.add_user("alice@localhost", "alice pass")
        server.add_user("bob@localhost", "bøb-pässwörd")
        server.start()
        asyncio.get_event_loop().run_until_complete(scenario(server))
        status = server.stop()
        assert status == 0, f"chatgroupd exited with {status}"
        print("slixmpp: login, chat both ways, version, wrong password: ok")
        return 0
    except Exception as e:  # report with the server log for diagnosis
        print(f"FAILED: {e!r}", file=sys.stderr)
        server.stop()
        with open(os.path.join(server.dir, "server.log")) as f:
            sys.stderr.write(f.read()[-5000:])
        return 1
    finally:
        server.cleanup()


if __name__ == "__main__":
    sys.exit(main())
