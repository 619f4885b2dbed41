"""The real chatgroupd for the Python client tests: free loopback port, fresh data dir and config (no
federation), accounts added with chatgroupctl (password on stdin), start waits for "chatgroupd: ready" (bounded,
event-driven), stop with SIGTERM."""
import os
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, chatgroupd, chatgroupctl, prefix="cg-py-"):
        self.dir = tempfile.mkdtemp(prefix=prefix)
        self.port = free_port()
        self.ctl = chatgroupctl
        self.config = os.path.join(self.dir, "chatgroup.toml")
        with open(self.config, "w") as f:
            f.write(f"""[server]
hosts = ["localhost"]
data_dir = "{self.dir}/data"
[c2s]
port = {self.port}
direct_tls_port = 0
[s2s]
enabled = false
[auth]
failure_delay = 0
[log]
level = "debug"
""")
        self.chatgroupd = chatgroupd
        self.proc = None

    def add_user(self, jid, password):
        r = subprocess.run([self.ctl, "-c", self.config, "adduser", jid], input=password + "\n",
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"adduser {jid} failed: {r.stdout}{r.stderr}")

    def start(self):
        self.log = open(os.path.join(self.dir, "server.log"), "w")
        self.proc = subprocess.Popen([self.chatgroupd, "-c", self.config], stdout=subprocess.PIPE,
                                     stderr=self.log)
        deadline = time.monotonic() + 30
        out = b""
        while b"chatgroupd: ready" not in out:
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([self.proc.stdout], [], [], max(remaining, 0))
            if not ready:
                raise RuntimeError("chatgroupd did not become ready")
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                raise RuntimeError("chatgroupd exited before it was ready")
            out += chunk

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return -1
        return self.proc.returncode if self.proc else None

    def cleanup(self):
        if not os.environ.get("CG_KEEP_TEST_DIRS"):
            shutil.rmtree(self.dir, ignore_errors=True)
