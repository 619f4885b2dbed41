#!/usr/bin/env python3
"""A tiny DNS server for the resolver's unit tests (python3-dnslib), on UDP 127.0.0.1 and a free port.

Usage: dns_stub.py ZONEFILE

Answers every question from the zone file (BIND syntax, as dnslib reads it) with the recursion-available flag set,
as a forwarder would: names that the zone does not hold get NXDOMAIN, names without records of the asked type an
empty NOERROR answer. Prints "port N" on stdout once it is listening and exits when its stdin is closed (the test
process ended). CG_DNS_STUB_LOG=1 prints each question on stderr.
"""
import os
import select
import socket
import sys

from dnslib import QTYPE, RCODE, RR, DNSRecord


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        zone = RR.fromZone(f.read())
    names = {str(rr.rname).lower() for rr in zone}
    log = os.environ.get("CG_DNS_STUB_LOG") == "1"

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    print(f"port {sock.getsockname()[1]}", flush=True)

    while True:
        readable, _, _ = select.select([sock, sys.stdin.fileno()], [], [])
        if sys.stdin.fileno() in readable and not os.read(sys.stdin.fileno(), 4096):
            return
        if sock not in readable:
            continue
        data, peer = sock.recvfrom(65535)
        try:
            query = DNSRecord.parse(data)
        except Exception:  # not DNS: ignore
            continue
        reply = query.reply()  # same id and question, QR, AA and RA set
        qname = str(query.q.qname).lower()
        qtype = query.q.qtype
        if qname not in names:
            reply.header.rcode = RCODE.NXDOMAIN
        for rr in zone:
            if str(rr.rname).lower() == qname and (rr.rtype == qtype or qtype == QTYPE.ANY):
                reply.add_answer(rr)
        if log:
            print(f"dns_stub: {qname} {QTYPE[qtype]} -> {RCODE[reply.header.rcode]} {len(reply.rr)}", file=sys.stderr)
        sock.sendto(reply.pack(), peer)


if __name__ == "__main__":
    main()
