#!/usr/bin/env python3
"""An OpenAI-compatible chat-completions server for the LLM client's tests, on 127.0.0.1 and a free port.

Usage: llm_server.py

    POST /<tag>/<scenario>/chat/completions   answers as <scenario> says (SCENARIOS below) and records the request
    GET  /<tag>/_requests                     the requests recorded under <tag>, as a JSON list of
                                              {"scenario", "path", "headers" (names in lower case), "body", "t"}
                                              (t: seconds on a monotonic clock, for gaps between requests)
    GET  /<tag>/_wait?n=N                     the same, once N requests of <tag> have arrived (at most 10 s: then 504)
    GET  /<tag>/_stats                        {"count": N, "max_inflight": M} — M: most requests of <tag> at once

A test uses its own <tag>, so the requests and counters of one test are never another's. "First request" below
means the first of its tag. Prints "port N" on stdout once it listens; exits when its stdin is closed.
Every wait is bounded: a scenario that stalls waits for the client to hang up, at most 10 s.
"""
import json
import select
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

STALL_LIMIT = 10.0

LOCK = threading.Condition()
REQUESTS = {}  # tag -> [record]
INFLIGHT = {}  # tag -> number now
MAX_INFLIGHT = {}  # tag -> most at once

QUOTA = {"error": {"message": "You exceeded your current quota, please check your plan and billing details.",
                   "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}}
UNAUTHORIZED = {"error": {"message": "Incorrect API key provided: sk-wrong.", "type": "invalid_request_error",
                          "param": None, "code": "invalid_api_key"}}
CONTEXT = {"error": {"message": "This model's maximum context length is 8192 tokens. However, your messages "
                                "resulted in 9000 tokens. Please reduce the length of the messages.",
                     "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}}
NO_MAX_TOKENS = {"error": {"message": "Unsupported parameter: 'max_tokens' is not supported with this model. "
                                      "Use 'max_completion_tokens' instead.",
                           "type": "invalid_request_error", "param": "max_tokens", "code": "unsupported_parameter"}}
# vLLM (pydantic) on a request field it does not know
NO_MAX_COMPLETION_TOKENS = {"object": "error", "type": "BadRequestError", "param": None, "code": 400,
                            "message": "[{'type': 'extra_forbidden', 'loc': ('body', 'max_completion_tokens'), "
                                       "'msg': 'Extra inputs are not permitted'}]"}
RATE_LIMITED = {"error": {"message": "Rate limit reached for requests", "type": "requests",
                          "param": None, "code": "rate_limit_exceeded"}}
SERVER_ERROR = {"error": {"message": "The server had an error while processing your request.",
                          "type": "server_error", "param": None, "code": None}}


def served_model(body):
    return f"{body.get('model', '')}-served"


def chunk(body, content=None, finish=None, role=None, reasoning=None):
    delta = {}
    if role is not None:
        delta["role"] = role
    if content is not None:
        delta["content"] = content
    if reasoning is not None:
        delta["reasoning_content"] = reasoning
    return {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0, "model": served_model(body),
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def usage_chunk(body, completion_tokens):
    return {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0, "model": served_model(body),
            "choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": completion_tokens,
                                     "total_tokens": 12 + completion_tokens}}


def event(obj, eol=b"\n"):
    return b"data: " + json.dumps(obj, ensure_ascii=False).encode("utf-8") + eol + eol


def answer(body, content, finish="stop"):
    return {"id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": served_model(body),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": finish}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}}


def normal_stream(body, pieces, finish="stop"):
    out = event(chunk(body, role="assistant", content=""))
    for p in pieces:
        out += event(chunk(body, content=p))
    out += event(chunk(body, finish=finish))
    out += event(usage_chunk(body, len(pieces)))
    out += b"data: [DONE]\n\n"
    return out


def awkward_stream(body):
    """A stream with comments, other fields, reasoning, CRLF and CR line ends, and non-ASCII text, cut where a
    parser that assumes whole lines, whole UTF-8 characters or whole CRLFs would fail."""
    stream = b": keepalive\n\n"
    stream += b"event: message\nid: 1\n" + event(chunk(body, role="assistant", content=""))
    stream += event(chunk(body, reasoning="Thinking about greetings\u2026"))
    stream += event(chunk(body, content="Gr\u00fc\u00dfe "), eol=b"\r\n")
    stream += b": ping\r\r"
    stream += event(chunk(body, content="\U0001F44B \u2014 "), eol=b"\r")
    stream += event(chunk(body, content="ok"))
    stream += event(chunk(body, finish="stop"))
    stream += b"data: [DONE]\n\n"
    cuts = set()
    first_data = stream.find(b"data:")
    cuts.add(first_data + 2)  # "da" | "ta: {"
    u = stream.find("\u00fc".encode("utf-8"))
    cuts.add(u + 1)  # inside the two bytes of ü
    w = stream.find("\U0001F44B".encode("utf-8"))
    cuts.update({w + 1, w + 3})  # inside the four bytes of 👋
    crlf = stream.find(b"\r\n")
    cuts.add(crlf + 1)  # between CR and LF
    done = stream.find(b"[DONE]")
    cuts.add(done + 3)
    cuts.add(stream.find(b"\n\n", done) + 1)  # between the two line ends of the last event
    pieces, last = [], 0
    for c in sorted(cuts):
        pieces.append(stream[last:c])
        last = c
    pieces.append(stream[last:])
    return pieces


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # each write its own segment: the client sees our cuts

    def log_message(self, *args):
        pass

    def handle(self):
        try:
            super().handle()
        except (ConnectionError, BrokenPipeError, OSError, ValueError):
            self.close_connection = True

    def finish(self):
        try:
            super().finish()
        except (OSError, ValueError):
            pass

    # --- plumbing ---

    def send_json(self, status, obj, headers=()):
        data = json.dumps(obj).encode("utf-8")
        self.send_raw(status, data, "application/json", headers)

    def send_raw(self, status, data, content_type, headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def start_stream(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def send_piece(self, data):
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_stream(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def stream(self, data):
        self.start_stream()
        self.send_piece(data)
        self.end_stream()

    def wait_for_hangup(self):
        """Returns when the client closes the connection (or after STALL_LIMIT seconds)."""
        deadline = time.monotonic() + STALL_LIMIT
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            readable, _, _ = select.select([self.connection], [], [], left)
            if readable:
                break
        self.close_connection = True

    def reset(self):
        """Ends the connection with a TCP RST."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()
        self.wfile.close()
        self.connection.close()
        self.close_connection = True

    # --- control ---

    def do_GET(self):
        url = urlsplit(self.path)
        parts = url.path.strip("/").split("/")
        if len(parts) != 2:
            self.send_json(404, {"error": "no such path"})
            return
        tag, what = parts
        if what == "_requests":
            with LOCK:
                self.send_json(200, REQUESTS.get(tag, []))
        elif what == "_wait":
            n = int(parse_qs(url.query).get("n", ["1"])[0])
            with LOCK:
                ok = LOCK.wait_for(lambda: len(REQUESTS.get(tag, [])) >= n, timeout=10)
                records = list(REQUESTS.get(tag, []))
            self.send_json(200 if ok else 504, records)
        elif what == "_stats":
            with LOCK:
                self.send_json(200, {"count": len(REQUESTS.get(tag, [])), "max_inflight": MAX_INFLIGHT.get(tag, 0)})
        else:
            self.send_json(404, {"error": "no such path"})

    # --- the chat completions endpoint ---

    def do_POST(self):
        parts = urlsplit(self.path).path.strip("/").split("/")
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length)
        if len(parts) != 4 or parts[2:] != ["chat", "completions"]:
            self.send_json(404, {"error": {"message": "unknown path " + self.path}})
            return
        tag, scenario = parts[0], parts[1]
        self.tag = tag
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        with LOCK:
            records = REQUESTS.setdefault(tag, [])
            records.append({"scenario": scenario, "path": self.path, "body": body, "t": time.monotonic(),
                            "headers": {k.lower(): v for k, v in self.headers.items()}})
            nth = len(records)
            INFLIGHT[tag] = INFLIGHT.get(tag, 0) + 1
            MAX_INFLIGHT[tag] = max(MAX_INFLIGHT.get(tag, 0), INFLIGHT[tag])
            LOCK.notify_all()
        try:
            self.scenario(scenario, body if isinstance(body, dict) else {}, nth)
        finally:
            with LOCK:
                INFLIGHT[tag] -= 1

    def ok(self, body, content="Hello, world."):
        if body.get("stream"):
            self.stream(normal_stream(body, ["Hello", ", ", "world", "."]) if content == "Hello, world." else
                        normal_stream(body, [content]))
        else:
            self.send_json(200, answer(body, content))

    def scenario(self, name, body, nth):
        if name == "ok":
            self.ok(body)
        elif name == "json":  # a JSON answer whatever "stream" says
            self.send_json(200, answer(body, "Hello from JSON."))
        elif name == "split":
            self.start_stream()
            for piece in awkward_stream(body):
                self.send_piece(piece)
                time.sleep(0.003)  # the model's pace: lets each piece arrive on its own
            self.end_stream()
        elif name == "think":
            self.stream(normal_stream(body, ["<thi", "nk>Let me think about ", "this.</th", "ink>\n\nThe ans",
                                             "wer is 42."]))
        elif name == "length":
            self.stream(normal_stream(body, ["A partial ", "answ"], finish="length"))
        elif name == "slow-first":  # headers and a keepalive at once, then no token until the client gives up
            self.start_stream()
            self.send_piece(b": ping\n\n")
            self.wait_for_hangup()
        elif name == "stall":  # two tokens, then silence
            self.start_stream()
            self.send_piece(event(chunk(body, role="assistant", content="")))
            self.send_piece(event(chunk(body, content="Hel")))
            self.wait_for_hangup()
        elif name == "hang":  # not even headers
            self.wait_for_hangup()
        elif name == "ratelimit":
            if nth == 1:
                self.send_json(429, RATE_LIMITED, [("Retry-After", "1")])
            else:
                self.ok(body)
        elif name == "ratelimit-reset":
            if nth == 1:
                self.send_json(429, RATE_LIMITED, [("x-ratelimit-reset-requests", "400ms"),
                                                   ("x-ratelimit-reset-tokens", "20ms")])
            else:
                self.ok(body)
        elif name == "quota":
            self.send_json(429, QUOTA)
        elif name == "flaky":
            if nth == 1:
                self.send_json(500, SERVER_ERROR)
            else:
                self.ok(body)
        elif name == "down":
            self.send_json(500, SERVER_ERROR)
        elif name == "unauthorized":
            self.send_json(401, UNAUTHORIZED)
        elif name == "context":
            self.send_json(400, CONTEXT)
        elif name == "new-model":
            if "max_tokens" in body:
                self.send_json(400, NO_MAX_TOKENS)
            else:
                self.ok(body)
        elif name == "old-model":
            if "max_completion_tokens" in body:
                self.send_json(400, NO_MAX_COMPLETION_TOKENS)
            else:
                self.ok(body)
        elif name == "malformed":
            self.stream(event(chunk(body, role="assistant", content="ok")) +
                        b'data: {"choices": [{"delta": {"content": "x"}\n\n' + b"data: [DONE]\n\n")
        elif name == "malformed-json":
            self.send_raw(200, b'{"choices": [{"message": {"content": "x"', "application/json")
        elif name == "reset":
            self.start_stream()
            self.send_piece(event(chunk(body, role="assistant", content="Hel")))
            self.reset()
        elif name == "pairs":  # answers once two requests of the tag are in flight (or after 1 s alone)
            with LOCK:
                LOCK.wait_for(lambda: INFLIGHT.get(self.tag, 0) >= 2, timeout=1.0)
            self.ok(body)
        elif name == "mixed":  # for cancellation: #2 is told to come back in 30 s, #1 and #3 hang, #4 on is fine
            if nth == 2:
                self.send_json(429, RATE_LIMITED, [("Retry-After", "30")])
            elif nth <= 3:
                self.wait_for_hangup()
            else:
                self.ok(body)
        else:
            self.send_json(404, {"error": {"message": f"The model '{name}' does not exist",
                                           "code": "model_not_found"}})


def main():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"port {server.server_address[1]}", flush=True)

    def watch_stdin():
        while sys.stdin.buffer.read(4096):
            pass
        server.shutdown()

    threading.Thread(target=watch_stdin, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
