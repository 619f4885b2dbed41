#!/usr/bin/python3
"""XEP-0050 ad-hoc commands through Gajim's client library, nbxmpp (Debian's python3-nbxmpp).

nbxmpp's AdHoc module parses the command list and every <command/> strictly (each disco item needs a jid, node
and name; a response needs node and status, a sessionid unless a one-stage command completes at once, valid note
types and actions). Starts chatgroupd on free loopback ports with a fresh data directory, logs in over STARTTLS
trusting the server's self-signed certificate, lists the commands, runs the built-in uptime command, and checks
the errors for a session id the server never gave out and for a command that does not exist. Exits non-zero on any
failure. Every wait is bounded and waits for an event (GLib main loop), never a fixed sleep.
"""
import argparse
import os
import sys

import gi

gi.require_version("Gio", "2.0")
gi.require_version("GLib", "2.0")
from gi.repository import Gio, GLib

from nbxmpp.client import Client
from nbxmpp.const import AdHocAction, AdHocNoteType, AdHocStatus
from nbxmpp.const import ConnectionProtocol, ConnectionType
from nbxmpp.errors import StanzaError
from nbxmpp.modules.dataforms import extend_form
from nbxmpp.protocol import JID
from nbxmpp.structs import AdHocCommand

from chatgroup_server import Server as _Server


def Server(chatgroupd, chatgroupctl):
    return _Server(chatgroupd, chatgroupctl, prefix="cg-nbxmpp-")

COMMANDS = "http://jabber.org/protocol/commands"
UPTIME = "http://chatgroup.im/commands#uptime"


class Loop:
    """Runs the GLib main loop until a step finishes (or a deadline passes)."""

    def __init__(self):
        self.loop = GLib.MainLoop()
        self.result = None

    def run(self, seconds, what):
        self.result = None
        timed_out = []

        def on_timeout():
            timed_out.append(True)
            self.loop.quit()
            return False

        source = GLib.timeout_add_seconds(seconds, on_timeout)
        self.loop.run()
        if timed_out:
            raise RuntimeError(f"timed out waiting for {what}")
        GLib.source_remove(source)
        return self.result

    def done(self, result):
        self.result = result
        self.loop.quit()


def login(loop, server, user, password, resource):
    client = Client()
    client.set_domain("localhost")
    client.set_username(user)
    client.set_resource(resource)
    client.set_password(password)
    client.set_custom_host(f"127.0.0.1:{server.port}", ConnectionProtocol.TCP, ConnectionType.START_TLS)
    cert = Gio.TlsCertificate.new_from_file(os.path.join(server.dir, "data", "selfsigned.crt"))
    client.set_accepted_certificates([cert])
    client.subscribe("connected", lambda *_: loop.done("ok"))
    client.subscribe("connection-failed", lambda *_: loop.done(f"connection failed: {client.get_error()}"))
    client.subscribe("disconnected", lambda *_: loop.done(f"disconnected: {client.get_error()}"))
    client.subscribe("bad-certificate", lambda *_: loop.done("bad certificate"))
    client.connect()
    outcome = loop.run(30, "the login")
    assert outcome == "ok", outcome
    return client


def call(loop, start, what):
    """Starts an nbxmpp task with a callback and returns its result, or the exception it raised."""

    def on_finished(task):
        try:
            loop.done(task.finish())
        except Exception as e:  # the task's error is the step's result
            loop.done(e)

    start(on_finished)
    return loop.run(20, what)


def app_condition(error):
    node = error.stanza.getTag("error")
    for child in node.getChildren():
        if child.getNamespace() == COMMANDS:
            return child.getName()
    return None


def scenario(server):
    loop = Loop()
    alice = login(loop, server, "alice", "alice pass", "nbxmpp")
    adhoc = alice.get_module("AdHoc")
    domain = JID.from_string("localhost")

    # The command list: nbxmpp builds an AdHocCommand from each <item/> (jid, node and name all needed).
    commands = call(loop, lambda cb: adhoc.request_command_list(domain, callback=cb), "the command list")
    assert not isinstance(commands, Exception), f"command list failed: {commands!r}"
    by_node = {c.node: c for c in commands}
    assert UPTIME in by_node, f"the uptime command is not listed: {commands}"
    uptime = by_node[UPTIME]
    assert uptime.name == "Server uptime", uptime
    assert str(uptime.jid) == "localhost", uptime

    # Execute: one stage, completed at once, with a session id, a result form and an info note.
    result = call(loop, lambda cb: adhoc.execute_command(uptime, callback=cb), "the uptime command")
    assert isinstance(result, AdHocCommand), f"execute failed: {result!r}"
    assert result.status == AdHocStatus.COMPLETED, result
    assert result.sessionid, f"no session id: {result}"
    assert result.node == UPTIME, result
    assert not result.actions, result
    assert len(result.notes) == 1 and result.notes[0].type == AdHocNoteType.INFO, result.notes
    assert "has been up for" in result.notes[0].text, result.notes
    form = extend_form(node=result.data)
    assert form.type_ == "result", form.type_
    seconds = form["seconds"].value
    assert seconds.isdigit(), f"seconds: {seconds!r}"
    assert form["uptime"].value, "no uptime text"

    # Continuing a session the server never gave out: bad-request with <bad-sessionid/>.
    bogus = AdHocCommand(jid=domain, node=UPTIME, name=None, sessionid="not-a-session")
    error = call(loop, lambda cb: adhoc.execute_command(bogus, AdHocAction.NEXT, callback=cb), "a bogus session")
    assert isinstance(error, StanzaError), f"expected an error: {error!r}"
    assert error.condition == "bad-request", error.condition
    assert app_condition(error) == "bad-sessionid", app_condition(error)

    # The session of the completed command has ended: session-expired.
    ended = AdHocCommand(jid=domain, node=UPTIME, name=None, sessionid=result.sessionid)
    error = call(loop, lambda cb: adhoc.execute_command(ended, callback=cb), "an ended session")
    assert isinstance(error, StanzaError), f"expected an error: {error!r}"
    assert error.condition == "not-allowed", error.condition
    assert app_condition(error) == "session-expired", app_condition(error)

    # A command that does not exist: item-not-found.
    missing = AdHocCommand(jid=domain, node="urn:example:no-such-command", name=None)
    error = call(loop, lambda cb: adhoc.execute_command(missing, callback=cb), "an unknown command")
    assert isinstance(error, StanzaError), f"expected an error: {error!r}"
    assert error.condition == "item-not-found", error.condition

    alice.disconnect()
    loop.run(10, "the disconnect")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--chatgroupd", required=True)
    ap.add_argument("--chatgroupctl", required=True)
    args = ap.parse_args()
    server = Server(args.chatgroupd, args.chatgroupctl)
    try:
        server.add_user("alice@localhost", "alice pass")
        server.start()
        scenario(server)
        status = server.stop()
        assert status == 0, f"chatgroupd exited with {status}"
        print("nbxmpp: command list, uptime, bad-sessionid, session-expired, item-not-found: ok")
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
