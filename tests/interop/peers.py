#!/usr/bin/python3
"""Real federation peers for ChatGroup's s2s interop tests: Prosody 0.12 and ejabberd 23.01 on loopback.

    peers.py start DIR [--prosody-dialback] [--ejabberd-cert-only] [--untrusted PEER] [--no-srv]
                       [--chatgroupd BIN --chatgroupctl BIN [--chatgroup-untrusted] [--chatgroup-no-dialback]]
                                        # CA + certs, DNS stub, /etc/hosts, Prosody, ejabberd (and ChatGroup)
    peers.py chatgroup DIR --chatgroupd BIN --chatgroupctl BIN [--chatgroup-untrusted]   # ChatGroup into running DIR
    peers.py stop-chatgroup DIR         # only ChatGroup
    peers.py stop DIR                   # everything started in DIR; removes the /etc/hosts lines
    peers.py status DIR

Importable:  p = Peers(DIR).start(); ...; p.stop()   and  start_chatgroup(DIR, chatgroupd, chatgroupctl, trusted=True)

Everything lives in the scratch directory DIR:
    pki/ca.crt, ca.key                   the trusted test CA (made fresh at `start`)
    pki/<domain>.crt, .key, .pem         cert (+ key in .pem) for chatgroup.test, prosody.test, ejabberd.test,
                                         subjectAltName DNS:<domain>, DNS:*.<domain>; signed by the trusted CA
    pki-untrusted/ca.crt, ca.key         a second CA that no peer trusts
    pki-untrusted/<domain>.crt/.key/.pem the same three domains signed by the untrusted CA (dialback-only tests:
                                         start_chatgroup(trusted=False) uses chatgroup.test's; --untrusted PEER)
    dns/                                 the DNS stub's zone (zone.json), log, pid
    prosody/                             prosody.cfg.lua, data/, prosody.log, prosody.pid
    ejabberd/                            ejabberd.yml, ejabberdctl.cfg, inetrc, spool/, logs/ejabberd.log, ejabberd.pid
    chatgroup/                           chatgroup.toml, data/, chatgroupd.log (start_chatgroup)
    state.json                           what was started (pids, addresses, users), read by `stop` and federation.py

Name resolution (nothing is ever sent off this machine):
  * The DNS stub (dnslib) on 127.0.0.53:5353 UDP+TCP is authoritative for *.test only: A for the domains below,
    SRV _xmpp-server._tcp.<domain> -> <domain>:5269 for the three XMPP domains (unless --no-srv), NOERROR/empty for
    other types of a known name, NXDOMAIN for everything else. It never forwards.
  * Prosody 0.12 uses libunbound (lua-unbound is installed). Prosody's own default is hoststxt=false, i.e. it does
    NOT read /etc/hosts, and resolvconf=true would forward to /etc/resolv.conf's off-machine nameserver. Worse,
    libunbound has a built-in local zone "test." (RFC 6761) that answers every *.test name NXDOMAIN without asking
    anyone. We set  unbound = { resolvconf = false; hoststxt = false; forward = { "127.0.0.53@5353" };
    options = { ["local-zone:"] = "test. transparent" } }  so every lookup (SRV, A, AAAA) goes to the stub and only
    there.
  * ejabberd 23.01 (p1_xmpp xmpp_stream_out) resolves SRV with inet_res:getbyname (Erlang's own resolver: nameservers
    from ERL_INETRC, not /etc/hosts) and A/AAAA with net:getaddrinfo (libc: /etc/nsswitch.conf "files dns", so
    /etc/hosts). We give it its own inetrc ({resolv_conf, ""} + {nameserver, {127,0,0,53}, 5353}) and add the domains
    to /etc/hosts, so neither path leaves the machine.
  * /etc/hosts gets one line per domain, tagged "# chatgroup-interop", added idempotently and removed by stop.
"""
import argparse
import datetime
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time

# Domain -> loopback address. unreachable.test resolves to an address where nothing listens.
ADDRESSES = {
    "chatgroup.test": "127.0.0.4",
    "prosody.test": "127.0.0.2",
    "ejabberd.test": "127.0.0.3",
    "unreachable.test": "127.0.0.9",
}
XMPP_DOMAINS = ["chatgroup.test", "prosody.test", "ejabberd.test"]
C2S_PORT = 5222
S2S_PORT = 5269
DNS_ADDRESS = ("127.0.0.53", 5353)
# Accounts created on every server (password ASCII + non-ASCII to exercise SASLprep on each side).
USERS = {"alice": "alice-pass", "bob": "bob-pässword"}
HOSTS_TAG = "# chatgroup-interop"
HOSTS_FILE = "/etc/hosts"
EJABBERD_NODE = "ejabberd-interop@localhost"


def log(msg):
    print(f"peers: {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------------------------
# Certificates (python3-cryptography, Debian's package)

def _write(path, data, mode=0o644):
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def make_pki(directory, ca_name, domains):
    """A fresh CA in DIRECTORY (ca.crt/ca.key) and a cert per domain (<d>.crt, <d>.key, <d>.pem = cert + key)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    os.makedirs(directory, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)
    not_before, not_after = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)

    def key_pem(key):
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                 serialization.NoEncryption())

    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca_subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ChatGroup interop tests"),
                            x509.NameAttribute(NameOID.COMMON_NAME, ca_name)])
    ca_cert = (x509.CertificateBuilder()
               .subject_name(ca_subject).issuer_name(ca_subject).public_key(ca_key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                            data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                            crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
               .sign(ca_key, hashes.SHA256()))
    _write(os.path.join(directory, "ca.crt"), ca_cert.public_bytes(serialization.Encoding.PEM))
    _write(os.path.join(directory, "ca.key"), key_pem(ca_key), 0o600)

    for domain in domains:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domain)]))
                .issuer_name(ca_subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number()).not_valid_before(not_before).not_valid_after(not_after)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=True,
                                             data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                             crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
                # s2s certificates are presented in both roles: serverAuth for s2s-in, clientAuth for s2s-out.
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                      ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(domain), x509.DNSName("*." + domain)]),
                               critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        _write(os.path.join(directory, f"{domain}.crt"), cert_pem)
        _write(os.path.join(directory, f"{domain}.key"), key_pem(key), 0o600)
        _write(os.path.join(directory, f"{domain}.pem"), cert_pem + key_pem(key), 0o600)


# ----------------------------------------------------------------------------------------------------------------
# DNS stub (python3-dnslib), run as a child process: `peers.py dns ZONE.json`

def make_zone(srv=True):
    zone = {"a": dict(ADDRESSES), "srv": {}}
    if srv:
        for d in XMPP_DOMAINS:
            zone["srv"][f"_xmpp-server._tcp.{d}"] = [[0, 5, S2S_PORT, d]]
    return zone


def run_dns(zone_path):
    from dnslib import A, QTYPE, RCODE, RR, SOA, SRV
    from dnslib.server import BaseResolver, DNSLogger, DNSServer

    with open(zone_path) as f:
        cfg = json.load(f)
    a = {k.lower().rstrip("."): v for k, v in cfg["a"].items()}
    srv = {k.lower().rstrip("."): v for k, v in cfg["srv"].items()}
    host, port = cfg["listen"]

    class Resolver(BaseResolver):
        def resolve(self, request, handler):
            reply = request.reply()  # aa=1, ra=1 by default; we set ra=0: we never recurse
            reply.header.ra = 0
            name = str(request.q.qname).lower().rstrip(".")
            qtype = request.q.qtype
            known = name in a or name in srv
            if qtype == QTYPE.A and name in a:
                reply.add_answer(RR(request.q.qname, QTYPE.A, ttl=5, rdata=A(a[name])))
            elif qtype == QTYPE.SRV and name in srv:
                for prio, weight, p, target in srv[name]:
                    reply.add_answer(RR(request.q.qname, QTYPE.SRV, ttl=5,
                                        rdata=SRV(priority=prio, weight=weight, port=p, target=target + ".")))
            else:
                if not known:
                    reply.header.rcode = RCODE.NXDOMAIN
                # negative answers carry an SOA so resolvers may cache them briefly
                reply.add_auth(RR("test.", QTYPE.SOA, ttl=5,
                                  rdata=SOA("ns.test.", "hostmaster.test.", (1, 60, 60, 60, 5))))
            return reply

    logger = DNSLogger("request,reply,truncated,error", False,
                       logf=lambda line: print(f"{time.strftime('%H:%M:%S')} {line}", file=sys.stderr, flush=True))
    servers = [DNSServer(Resolver(), address=host, port=port, logger=logger),
               DNSServer(Resolver(), address=host, port=port, tcp=True, logger=logger)]
    for s in servers:
        s.start_thread()
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    # Readiness: both sockets are bound (DNSServer binds in its constructor). Tell the parent, then drop stdout so
    # nothing is ever written to a pipe whose reader is gone.
    sys.stdout.write("dns: ready\n")
    sys.stdout.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    while not stop:
        signal.pause()
    for s in servers:
        s.stop()


def dns_query(name, qtype="A", timeout=2.0):
    """Ask the stub (used by the self-check and by status)."""
    from dnslib import DNSRecord
    q = DNSRecord.question(name, qtype)
    return DNSRecord.parse(q.send(DNS_ADDRESS[0], DNS_ADDRESS[1], timeout=timeout))


# ----------------------------------------------------------------------------------------------------------------
# /etc/hosts

def hosts_add(entries):
    """Idempotent: removes our tagged lines and appends one per domain. Writes in place (the file may be a mount)."""
    with open(HOSTS_FILE) as f:
        lines = [line for line in f.read().splitlines() if not line.rstrip().endswith(HOSTS_TAG)]
    lines += [f"{addr} {name} {HOSTS_TAG}" for name, addr in entries.items()]
    with open(HOSTS_FILE, "r+") as f:
        f.seek(0)
        f.write("\n".join(lines) + "\n")
        f.truncate()


def hosts_remove():
    with open(HOSTS_FILE) as f:
        text = f.read()
    lines = [line for line in text.splitlines() if not line.rstrip().endswith(HOSTS_TAG)]
    new = "\n".join(lines) + "\n"
    if new != text:
        with open(HOSTS_FILE, "r+") as f:
            f.seek(0)
            f.write(new)
            f.truncate()


# ----------------------------------------------------------------------------------------------------------------
# Waiting (always for an event, always bounded)

def port_open(host, port):
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def wait_until(what, condition, timeout, alive=None, interval=0.1):
    """Poll CONDITION (a cheap check for an event: a port accepting, a log line) until true or TIMEOUT seconds.
    ALIVE, if given, is checked too so a peer that died is reported at once rather than at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return
        if alive is not None and not alive():
            raise RuntimeError(f"{what}: the process exited")
        if time.monotonic() >= deadline:
            raise RuntimeError(f"{what}: not within {timeout}s")
        time.sleep(interval)


def read_ready_line(proc, marker, timeout):
    """Read PROC's stdout until MARKER appears (bounded by select), as tests/integration/slixmpp_chat.py does."""
    deadline = time.monotonic() + timeout
    out = b""
    while marker not in out:
        remaining = deadline - time.monotonic()
        ready, _, _ = select.select([proc.stdout], [], [], max(remaining, 0))
        if not ready:
            raise RuntimeError(f"no {marker!r} within {timeout}s; got {out[-500:]!r}")
        chunk = os.read(proc.stdout.fileno(), 4096)
        if not chunk:
            raise RuntimeError(f"exited before {marker!r}; got {out[-500:]!r}")
        out += chunk
    return out


def file_contains(path, needle):
    try:
        with open(path, "rb") as f:
            return needle.encode() in f.read()
    except FileNotFoundError:
        return False


def pid_alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child still answers kill(0); look at /proc
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def kill_pid(pid, what, timeout=15, match=None):
    """SIGTERM PID (one we started), wait for it to go, SIGKILL if it does not. Returns True if it had to be killed.
    MATCH: a substring its command line must contain, so a recycled pid is never signalled."""
    if not pid or not pid_alive(pid):
        return False
    if match and match not in cmdline(pid):
        log(f"pid {pid} is no longer {what} ({cmdline(pid)[:80]!r}); not signalled")
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        try:  # reap it if it is our child
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return False
        except ChildProcessError:
            pass
        time.sleep(0.05)
    if pid_alive(pid):
        log(f"{what} (pid {pid}) ignored SIGTERM for {timeout}s; SIGKILL")
        os.kill(pid, signal.SIGKILL)
        return True
    return False


def pids_named(comm):
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/comm") as f:
                    if f.read().strip() == comm:
                        pids.add(int(entry))
            except OSError:
                pass
    return pids


def tail(path, n=4000):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-n:]
    except OSError as e:
        return f"({path}: {e})"


# ----------------------------------------------------------------------------------------------------------------
# Configs

def prosody_config(d, secure_auth=True, log_level="debug", untrusted=False):
    pki = os.path.join(d, "pki")
    own = os.path.join(d, "pki-untrusted" if untrusted else "pki")
    pd = os.path.join(d, "prosody")
    ip = ADDRESSES["prosody.test"]
    lua_bool = "true" if secure_auth else "false"
    return f"""-- Generated by tests/interop/peers.py. Prosody 0.12 serving prosody.test on {ip} only.
run_as_root = true            -- we are root in a throwaway sandbox; keeps the scratch dir root-owned
pidfile = "{pd}/prosody.pid"
data_path = "{pd}/data"
log = {{ {{ levels = {{ min = "{log_level}" }}, to = "file", filename = "{pd}/prosody.log" }} }}

interfaces = {{ "{ip}" }}
c2s_interfaces = {{ "{ip}" }}
s2s_interfaces = {{ "{ip}" }}
c2s_ports = {{ {C2S_PORT} }}
s2s_ports = {{ {S2S_PORT} }}
c2s_direct_tls_ports = {{ }}
s2s_direct_tls_ports = {{ }}
legacy_ssl_ports = {{ }}
http_ports = {{ }}
https_ports = {{ }}
admin_socket = "{pd}/prosody.sock"

modules_enabled = {{
    "roster"; "saslauth"; "tls"; "dialback"; "disco"; "version"; "ping"; "presence"; "offline";
    "uptime"; "time"; "posix";
}}
modules_disabled = {{ "s2s_bidi" }}   -- neither ejabberd nor ChatGroup speaks XEP-0288

authentication = "internal_hashed"
storage = "internal"
c2s_require_encryption = true
s2s_require_encryption = true
-- true: only peers whose certificate verifies against the test CA; false: dialback is accepted as well
s2s_secure_auth = {lua_bool}
s2s_timeout = 30

ssl = {{ cafile = "{pki}/ca.crt"; capath = false; }}

-- DNS: libunbound, forwarding only to the test stub; no /etc/resolv.conf (off-machine), no root hints, no
-- /etc/hosts. libunbound answers every *.test query itself with NXDOMAIN (a default local zone, RFC 6761) unless
-- "test." is made transparent; "test. nodefault" has no effect through ub_ctx_set_option.
unbound = {{
    resolvconf = false; hoststxt = false;
    forward = {{ "{DNS_ADDRESS[0]}@{DNS_ADDRESS[1]}" }};
    options = {{ ["local-zone:"] = "test. transparent" }};
}}

VirtualHost "prosody.test"
    ssl = {{
        certificate = "{own}/prosody.test.crt";
        key = "{own}/prosody.test.key";
        cafile = "{pki}/ca.crt";
        capath = false;
    }}
"""


def ejabberd_configs(d, loglevel="info", untrusted=False, dialback=True):
    pki = os.path.join(d, "pki")
    own = os.path.join(d, "pki-untrusted" if untrusted else "pki")
    ed = os.path.join(d, "ejabberd")
    ip = ADDRESSES["ejabberd.test"]
    yml = f"""# Generated by tests/interop/peers.py. ejabberd 23.01 serving ejabberd.test on {ip} only.
loglevel: {loglevel}
log_rotate_count: 0
hosts:
  - ejabberd.test
certfiles:
  - "{own}/ejabberd.test.crt"
  - "{own}/ejabberd.test.key"
ca_file: "{pki}/ca.crt"
s2s_cafile: "{pki}/ca.crt"
s2s_use_starttls: required
s2s_dns_timeout: 5
s2s_dns_retries: 1
s2s_max_retry_delay: 5
s2s_timeout: 60
listen:
  -
    port: {C2S_PORT}
    ip: "{ip}"
    module: ejabberd_c2s
    max_stanza_size: 262144
    access: c2s
    starttls_required: true
  -
    port: {S2S_PORT}
    ip: "{ip}"
    module: ejabberd_s2s_in
    max_stanza_size: 524288
auth_method: internal
auth_password_format: scram
acl:
  local:
    user_regexp: ""
  loopback:
    ip:
      - 127.0.0.0/8
access_rules:
  local:
    allow: local
  c2s:
    allow: all
  s2s:
    allow: all
shaper_rules:
  max_user_sessions: 10
  max_user_offline_messages: 100
api_permissions:
  "console commands":
    from:
      - ejabberd_ctl
    who: all
    what: "*"
modules:
  mod_disco: {{}}
  mod_ping: {{}}
  mod_roster: {{}}
  mod_version:
    show_os: false
  mod_offline: {{}}
  mod_last: {{}}
  mod_time: {{}}
{"  mod_s2s_dialback: {}" if dialback else "  # mod_s2s_dialback not loaded: certificates only"}
  mod_admin_extra: {{}}
"""
    # Sourced by ejabberdctl after its own defaults, so these win over /etc/ejabberd/ejabberdctl.cfg (which is not
    # read at all because --config-dir points here).
    ctl = f"""# Generated by tests/interop/peers.py; sourced by /usr/sbin/ejabberdctl --config-dir {ed}
ERLANG_NODE={EJABBERD_NODE}
ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0"
EJABBERD_CONFIG_PATH={ed}/ejabberd.yml
EJABBERD_PID_PATH={ed}/ejabberd.pid
# epmd and Erlang distribution on loopback only
ERL_EPMD_ADDRESS=127.0.0.1
INET_DIST_INTERFACE=127.0.0.1
# run as the invoking user (root in the sandbox) instead of su ejabberd: the scratch dir stays root-owned
EXEC_CMD=as_current_user
# the Erlang cookie goes here, not in /root
HOME={ed}
EJABBERD_BYPASS_WARNINGS=true
"""
    # ERL_INETRC: ejabberdctl points it at $CONFIG_DIR/inetrc. inet_res (SRV lookups) asks only the stub; the
    # system resolv.conf (an off-machine nameserver) is not read. A/AAAA go through libc (net:getaddrinfo), i.e.
    # /etc/hosts; "native" keeps Erlang's own gethostbyname on libc as well.
    inetrc = f"""{{lookup, [file, native]}}.
{{host, {{127,0,0,1}}, ["localhost"]}}.
{{resolv_conf, ""}}.
{{nameserver, {{{",".join(DNS_ADDRESS[0].split("."))}}}, {DNS_ADDRESS[1]}}}.
{{timeout, 2000}}.
{{retry, 2}}.
"""
    return yml, ctl, inetrc


def chatgroup_config(d, trusted=True, log_level="debug", allow_dialback=True):
    """ChatGroup's config for chatgroup.test on 127.0.0.4. [server]/[log]/[tls]/[c2s]/[auth] keys are those of
    conf/chatgroup.example.toml; the [s2s] section is the one being written (key names as agreed; adapt here)."""
    pki = os.path.join(d, "pki" if trusted else "pki-untrusted")
    cd = os.path.join(d, "chatgroup")
    ip = ADDRESSES["chatgroup.test"]
    return f"""# Generated by tests/interop/peers.py ({'trusted' if trusted else 'UNTRUSTED'} certificate)
[server]
hosts = ["chatgroup.test"]
data_dir = "{cd}/data"

[log]
level = "{log_level}"
file = "{cd}/chatgroupd.log"

[tls]
certificate = "{pki}/chatgroup.test.crt"
key = "{pki}/chatgroup.test.key"

[c2s]
addresses = ["{ip}"]
port = {C2S_PORT}
direct_tls_port = 0

[auth]
failure_delay = 0

[s2s]
enabled = true
addresses = ["{ip}"]
port = {S2S_PORT}
direct_tls_port = 0
require_encryption = true
allow_dialback = {'true' if allow_dialback else 'false'}
# peers' certificates are verified against the trusted test CA only (also when our own cert is the untrusted one)
ca_file = "{d}/pki/ca.crt"
system_trust = false
# every lookup (SRV, A, AAAA) from the test DNS stub, as Prosody does; /etc/hosts has the same names
nameserver = "{DNS_ADDRESS[0]}@{DNS_ADDRESS[1]}"
use_hosts_file = false
# re-runs should not wait out a long backoff after the unreachable.test scenario
max_backoff = 5
"""


# ----------------------------------------------------------------------------------------------------------------

class Peers:
    """The peer set in scratch directory DIR. start() brings up DNS stub, Prosody and ejabberd; stop() undoes it."""

    def __init__(self, directory, prosody_secure_auth=True, srv=True, prosody=True, ejabberd=True,
                 untrusted=(), ejabberd_dialback=True):
        """untrusted: peers ("prosody.test", "ejabberd.test") that present the certificate from the untrusted CA,
        to check the harness's dialback paths with two real peers."""
        self.dir = os.path.abspath(directory)
        self.untrusted = set(untrusted)
        self.ejabberd_dialback = ejabberd_dialback
        self.prosody_secure_auth = prosody_secure_auth
        self.srv = srv
        self.want_prosody = prosody
        self.want_ejabberd = ejabberd
        self.state_path = os.path.join(self.dir, "state.json")
        self.state = self._load_state()

    # -- state --------------------------------------------------------------------------------------------------
    def _load_state(self):
        try:
            with open(self.state_path) as f:
                return json.load(f)
        except FileNotFoundError:
            return {}

    def _save_state(self):
        os.makedirs(self.dir, exist_ok=True)
        tmp = self.state_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.state, f, indent=2)
        os.replace(tmp, self.state_path)

    def _record(self, key, value):
        self.state[key] = value
        self._save_state()

    # -- pieces -------------------------------------------------------------------------------------------------
    def make_certs(self):
        make_pki(os.path.join(self.dir, "pki"), "ChatGroup interop test CA", XMPP_DOMAINS)
        make_pki(os.path.join(self.dir, "pki-untrusted"), "UNTRUSTED interop test CA", XMPP_DOMAINS)

    def start_dns(self):
        dd = os.path.join(self.dir, "dns")
        os.makedirs(dd, exist_ok=True)
        zone = make_zone(self.srv)
        zone["listen"] = list(DNS_ADDRESS)
        zone_path = os.path.join(dd, "zone.json")
        with open(zone_path, "w") as f:
            json.dump(zone, f, indent=2)
        if port_open(*DNS_ADDRESS):
            raise RuntimeError(f"something already listens on {DNS_ADDRESS}: stop the other peer set first")
        logf = open(os.path.join(dd, "dns.log"), "ab")
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "dns", zone_path],
                                stdout=subprocess.PIPE, stderr=logf, start_new_session=True)
        self._record("dns_pid", proc.pid)
        try:
            read_ready_line(proc, b"dns: ready", 15)
        finally:
            proc.stdout.close()
        with open(os.path.join(dd, "dns.pid"), "w") as f:
            f.write(f"{proc.pid}\n")
        r = dns_query("prosody.test")
        assert str(r.rr[0].rdata) == ADDRESSES["prosody.test"], r
        log(f"DNS stub on {DNS_ADDRESS[0]}:{DNS_ADDRESS[1]} (pid {proc.pid})")

    def add_hosts(self):
        hosts_add(ADDRESSES)
        self._record("hosts_added", True)

    def start_prosody(self):
        pd = os.path.join(self.dir, "prosody")
        os.makedirs(os.path.join(pd, "data"), exist_ok=True)
        cfg = os.path.join(pd, "prosody.cfg.lua")
        with open(cfg, "w") as f:
            f.write(prosody_config(self.dir, self.prosody_secure_auth,
                                   untrusted="prosody.test" in self.untrusted))
        for user, pw in USERS.items():
            r = subprocess.run(["prosodyctl", "--config", cfg, "register", user, "prosody.test", pw],
                               capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                raise RuntimeError(f"prosodyctl register {user}: {r.stdout}{r.stderr}")
        ip = ADDRESSES["prosody.test"]
        for port in (C2S_PORT, S2S_PORT):
            if port_open(ip, port):
                raise RuntimeError(f"{ip}:{port} is already taken")
        out = open(os.path.join(pd, "prosody.stdout"), "ab")
        proc = subprocess.Popen(["prosody", "--config", cfg, "-F"], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=pd)
        self._record("prosody_pid", proc.pid)
        try:
            wait_until("prosody listening", lambda: port_open(ip, C2S_PORT) and port_open(ip, S2S_PORT), 60,
                       alive=lambda: proc.poll() is None)
            # net.unbound is initialised on server-started, which comes right after this line
            wait_until("prosody started", lambda: file_contains(os.path.join(pd, "prosody.log"),
                                                                "Hello and welcome to Prosody"), 30,
                       alive=lambda: proc.poll() is None)
        except RuntimeError:
            sys.stderr.write(tail(os.path.join(pd, "prosody.log")) + tail(os.path.join(pd, "prosody.stdout")))
            raise
        log(f"prosody.test on {ip} (pid {proc.pid}, s2s_secure_auth={self.prosody_secure_auth}"
            f"{', UNTRUSTED certificate' if 'prosody.test' in self.untrusted else ''})")

    def _ejabberdctl(self, *args, timeout=120, check=True):
        ed = os.path.join(self.dir, "ejabberd")
        cmd = ["ejabberdctl", "--config-dir", ed, "--spool", os.path.join(ed, "spool"),
               "--logs", os.path.join(ed, "logs"), *args]
        env = dict(os.environ, ERL_EPMD_ADDRESS="127.0.0.1", HOME=ed)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                           stdin=subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise RuntimeError(f"ejabberdctl {' '.join(args)} exited {r.returncode}: {r.stdout}{r.stderr}")
        return r

    def start_ejabberd(self):
        ed = os.path.join(self.dir, "ejabberd")
        for sub in ("spool", "logs"):
            os.makedirs(os.path.join(ed, sub), exist_ok=True)
        yml, ctl, inetrc = ejabberd_configs(self.dir, untrusted="ejabberd.test" in self.untrusted,
                                            dialback=self.ejabberd_dialback)
        for name, text in (("ejabberd.yml", yml), ("ejabberdctl.cfg", ctl), ("inetrc", inetrc)):
            with open(os.path.join(ed, name), "w") as f:
                f.write(text)
        ip = ADDRESSES["ejabberd.test"]
        for port in (C2S_PORT, S2S_PORT):
            if port_open(ip, port):
                raise RuntimeError(f"{ip}:{port} is already taken")
        epmd_before = pids_named("epmd")
        pidfile = os.path.join(ed, "ejabberd.pid")
        if os.path.exists(pidfile):
            os.unlink(pidfile)
        self._ejabberdctl("start", timeout=60)  # erl -detached: returns once the VM is forked
        self._record("ejabberd_started", True)
        logfile = os.path.join(ed, "logs", "ejabberd.log")

        def pid():
            try:
                with open(pidfile) as f:
                    return int(f.read().strip())
            except (OSError, ValueError):
                return None
        try:
            wait_until("ejabberd pid file", lambda: pid() is not None, 60)
            self._record("ejabberd_pid", pid())
            # ejabberd logs this once every module and listener is up (takes several seconds here)
            wait_until("ejabberd started", lambda: file_contains(logfile, "is started in the node"), 120,
                       alive=lambda: pid_alive(pid()))
            wait_until("ejabberd listening", lambda: port_open(ip, C2S_PORT) and port_open(ip, S2S_PORT), 30,
                       alive=lambda: pid_alive(pid()))
        except RuntimeError:
            sys.stderr.write(tail(logfile) + tail(os.path.join(ed, "logs", "error.log")))
            raise
        for user, pw in USERS.items():
            self._ejabberdctl("register", user, "ejabberd.test", pw)
        # the epmd daemon our `ejabberdctl start` brought up (if one was running before, it is left alone)
        new_epmd = sorted(p for p in pids_named("epmd") - epmd_before if pid_alive(p))
        if new_epmd:
            self._record("epmd_pids", new_epmd)
        log(f"ejabberd.test on {ip} (pid {pid()}, node {EJABBERD_NODE}"
            f"{', UNTRUSTED certificate' if 'ejabberd.test' in self.untrusted else ''}"
            f"{'' if self.ejabberd_dialback else ', no dialback'})")

    # -- whole set ------------------------------------------------------------------------------------------------
    def start(self):
        if self.state.get("running"):
            raise RuntimeError(f"{self.dir} already has running peers; run `peers.py stop {self.dir}` first")
        os.makedirs(self.dir, exist_ok=True)
        self.state = {"running": True, "dir": self.dir, "dns": list(DNS_ADDRESS), "users": USERS,
                      "ca_file": os.path.join(self.dir, "pki", "ca.crt"),
                      # clients trust both CAs: a peer's c2s certificate is not what these tests are about
                      "client_ca_files": [os.path.join(self.dir, "pki", "ca.crt"),
                                          os.path.join(self.dir, "pki-untrusted", "ca.crt")],
                      "servers": {}}
        self._save_state()
        try:
            self.make_certs()
            self.add_hosts()
            self.start_dns()
            if self.want_prosody:
                self.start_prosody()
                self.state["servers"]["prosody.test"] = [ADDRESSES["prosody.test"], C2S_PORT]
            if self.want_ejabberd:
                self.start_ejabberd()
                self.state["servers"]["ejabberd.test"] = [ADDRESSES["ejabberd.test"], C2S_PORT]
            self._save_state()
        except BaseException:
            log("start failed; stopping what was started")
            self.stop()
            raise
        return self

    def stop(self):
        st = self._load_state() or self.state
        if st.get("chatgroup_pid"):
            kill_pid(st["chatgroup_pid"], "chatgroupd", match="chatgroup")
        if st.get("ejabberd_started"):
            epid = st.get("ejabberd_pid")
            try:
                self._ejabberdctl("stop", timeout=60, check=False)
            except subprocess.TimeoutExpired:
                pass
            if epid:
                deadline = time.monotonic() + 30
                while pid_alive(epid) and time.monotonic() < deadline:
                    time.sleep(0.1)
                kill_pid(epid, "ejabberd", match="beam")
        for p in st.get("epmd_pids", []):  # only the epmd our ejabberd start brought up
            if pid_alive(p):
                kill_pid(p, "epmd", timeout=5, match="epmd")
        if st.get("prosody_pid"):
            kill_pid(st["prosody_pid"], "prosody", match="prosody")
        if st.get("dns_pid"):
            kill_pid(st["dns_pid"], "dns stub", timeout=5, match="peers.py")
        if st.get("hosts_added"):
            hosts_remove()
        self.state = {k: v for k, v in st.items() if k in ("dir", "dns", "users", "ca_file", "client_ca_files")}
        self.state["running"] = False
        if os.path.isdir(self.dir):
            self._save_state()
        log("stopped")

    def status(self):
        st = self._load_state()
        rows = []
        for key in ("dns_pid", "prosody_pid", "ejabberd_pid", "chatgroup_pid"):
            if st.get(key):
                rows.append(f"{key[:-4]}: pid {st[key]} {'alive' if pid_alive(st[key]) else 'DEAD'}")
        for d, (ip, port) in st.get("servers", {}).items():
            rows.append(f"{d}: c2s {ip}:{port} {'open' if port_open(ip, port) else 'CLOSED'}, "
                        f"s2s {ip}:{S2S_PORT} {'open' if port_open(ip, S2S_PORT) else 'CLOSED'}")
        return "\n".join(rows) or "nothing running"


def start_chatgroup(directory, chatgroupd_path, chatgroupctl_path, trusted=True, allow_dialback=True,
                    log_level="debug", timeout=30):
    """Write DIR/chatgroup/chatgroup.toml for chatgroup.test on 127.0.0.4 (certificate from the trusted CA, or with
    trusted=False from the untrusted one, for dialback-only tests), add the USERS with chatgroupctl (password on
    stdin), start chatgroupd and wait for its "chatgroupd: ready" line. Records the pid in DIR/state.json so
    `peers.py stop DIR` ends it too, and adds chatgroup.test to the servers federation.py tests. Returns the Popen."""
    d = os.path.abspath(directory)
    cd = os.path.join(d, "chatgroup")
    os.makedirs(os.path.join(cd, "data"), exist_ok=True)
    cfg = os.path.join(cd, "chatgroup.toml")
    with open(cfg, "w") as f:
        f.write(chatgroup_config(d, trusted=trusted, log_level=log_level, allow_dialback=allow_dialback))
    for user, pw in USERS.items():
        r = subprocess.run([chatgroupctl_path, "-c", cfg, "adduser", f"{user}@chatgroup.test"], input=pw + "\n",
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0 and "exist" not in (r.stdout + r.stderr).lower():
            raise RuntimeError(f"chatgroupctl adduser {user}: {r.stdout}{r.stderr}")
    ip = ADDRESSES["chatgroup.test"]
    if port_open(ip, C2S_PORT):
        raise RuntimeError(f"{ip}:{C2S_PORT} is already taken")
    # stdout to a file, not a pipe: the CLI exits while chatgroupd runs on. chatgroupd ends its ready line with
    # std::endl, so it is in the file as soon as it is written.
    stdout_path = os.path.join(cd, "chatgroupd.stdout")
    stdout = open(stdout_path, "wb")
    stderr = open(os.path.join(cd, "chatgroupd.stderr"), "ab")
    proc = subprocess.Popen([chatgroupd_path, "-c", cfg], stdout=stdout, stderr=stderr,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    peers = Peers(d)
    peers.state["chatgroup_pid"] = proc.pid
    peers._save_state()
    try:
        wait_until("chatgroupd ready", lambda: file_contains(stdout_path, "chatgroupd: ready"), timeout,
                   alive=lambda: proc.poll() is None)
    except RuntimeError:
        sys.stderr.write(tail(os.path.join(cd, "chatgroupd.log")) + tail(os.path.join(cd, "chatgroupd.stderr")))
        kill_pid(proc.pid, "chatgroupd")
        raise
    peers.state.setdefault("servers", {})["chatgroup.test"] = [ip, C2S_PORT]
    peers.state["chatgroup_trusted"] = trusted
    peers._save_state()
    log(f"chatgroup.test on {ip} (pid {proc.pid}, {'trusted' if trusted else 'untrusted'} certificate)")
    return proc


def stop_chatgroup(directory):
    """Stop only the chatgroupd that start_chatgroup started in DIRECTORY (the peers keep running)."""
    peers = Peers(directory)
    pid = peers.state.pop("chatgroup_pid", None)
    if pid:
        kill_pid(pid, "chatgroupd", match="chatgroup")
    peers.state.get("servers", {}).pop("chatgroup.test", None)
    peers._save_state()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("start", help="make certs, start DNS stub, Prosody and ejabberd in DIR")
    s.add_argument("dir")
    s.add_argument("--prosody-dialback", action="store_true",
                   help="s2s_secure_auth = false: Prosody accepts dialback from peers whose cert does not verify")
    s.add_argument("--ejabberd-cert-only", action="store_true",
                   help="ejabberd without mod_s2s_dialback: certificates (SASL EXTERNAL) are the only way in or out")
    s.add_argument("--no-srv", action="store_true", help="serve no _xmpp-server._tcp SRV records (A only)")
    s.add_argument("--untrusted", action="append", default=[], choices=["prosody.test", "ejabberd.test"],
                   help="this peer presents its certificate from the untrusted CA (harness check of dialback)")
    s.add_argument("--no-prosody", action="store_true")
    s.add_argument("--no-ejabberd", action="store_true")
    for p_ in (s, sub.add_parser("chatgroup", help="start ChatGroup (chatgroup.test) in a DIR whose peers run")):
        if p_ is not s:
            p_.add_argument("dir")
        p_.add_argument("--chatgroupd", required=p_ is not s, help="start ChatGroup with this chatgroupd")
        p_.add_argument("--chatgroupctl", required=p_ is not s, help="chatgroupctl to add its users")
        p_.add_argument("--chatgroup-untrusted", action="store_true",
                        help="ChatGroup presents the certificate from the untrusted CA (dialback-only tests)")
        p_.add_argument("--chatgroup-no-dialback", action="store_true", help="[s2s] allow_dialback = false")
    t = sub.add_parser("stop", help="stop everything started in DIR and remove the /etc/hosts lines")
    t.add_argument("dir")
    c = sub.add_parser("stop-chatgroup", help="stop only ChatGroup")
    c.add_argument("dir")
    u = sub.add_parser("status")
    u.add_argument("dir")
    d = sub.add_parser("dns", help=argparse.SUPPRESS)
    d.add_argument("zone")
    args = ap.parse_args()

    if args.cmd == "dns":
        run_dns(args.zone)
        return 0
    if args.cmd == "stop":
        Peers(args.dir).stop()
        return 0
    if args.cmd == "stop-chatgroup":
        stop_chatgroup(args.dir)
        return 0
    if args.cmd == "status":
        print(Peers(args.dir).status())
        return 0
    if args.cmd == "chatgroup":
        start_chatgroup(args.dir, args.chatgroupd, args.chatgroupctl, trusted=not args.chatgroup_untrusted,
                        allow_dialback=not args.chatgroup_no_dialback)
        print(Peers(args.dir).status())
        return 0
    peers = Peers(args.dir, prosody_secure_auth=not args.prosody_dialback, srv=not args.no_srv,
                  prosody=not args.no_prosody, ejabberd=not args.no_ejabberd, untrusted=args.untrusted,
                  ejabberd_dialback=not args.ejabberd_cert_only)
    peers.start()
    if args.chatgroupd:
        if not args.chatgroupctl:
            ap.error("--chatgroupd needs --chatgroupctl")
        try:
            start_chatgroup(args.dir, args.chatgroupd, args.chatgroupctl, trusted=not args.chatgroup_untrusted,
                            allow_dialback=not args.chatgroup_no_dialback)
        except BaseException:
            peers.stop()
            raise
    print(peers.status())
    return 0


if __name__ == "__main__":
    sys.exit(main())
