"""A tiny CRM + billing HTTP app on 127.0.0.1 for the sandbox and example-script tests.

Real sockets on purpose (STYLE.md rule 7: SSRF lives in the real socket path). Runs in a thread:

    with CrmServer() as crm:         # crm.url == "http://127.0.0.1:<port>"
        ...

    GET /contacts?email=E            {"email", "customerType": "VIP"|"standard"}   needs Bearer CRM_TOKEN
    GET /invoices?customer=E         {"invoices": [{"id", "status", "due", "amount"}]} needs Bearer BILLING_TOKEN
    GET /echo                        the request's method, path, headers (to prove secrets are scrubbed)
    POST /echo                       also the body
    GET /redirect?to=URL&code=302    a redirect to URL
    GET /loop                        a redirect to itself
    GET /charset                     UTF-8 text labelled with a charset nobody knows
    GET /big?n=BYTES[&chunked=1]     n bytes of "x" (no Content-Length when chunked)
    GET /slow?s=SECONDS              answers after a sleep
"""
from __future__ import annotations

import json
import os
import ssl
import subprocess
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from testkit import SERVE_POLL_S

CRM_TOKEN = "crm-secret-7f3a9c"
BILLING_TOKEN = "billing-secret-51d0e2"
VIP_EMAILS = {"ann@example.com", "vip@example.com"}
INVOICES = {
    "bob@example.com": [{"id": "INV-7", "status": "overdue", "due": "2026-10-01", "amount": 420.0},
                        {"id": "INV-9", "status": "paid", "due": "2026-09-01", "amount": 99.0}],
    "ann@example.com": [{"id": "INV-3", "status": "paid", "due": "2026-10-01", "amount": 10.0}],
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet tests
        pass

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _auth(self, token: str) -> bool:
        return self.headers.get("Authorization") == f"Bearer {token}"

    def do_GET(self) -> None:
        self._handle(b"")

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self._handle(self.rfile.read(length))

    do_PUT = do_PATCH = do_DELETE = do_POST

    def _handle(self, body: bytes) -> None:
        url = urllib.parse.urlsplit(self.path)
        q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        if url.path == "/contacts":
            if not self._auth(CRM_TOKEN):
                return self._send(401, {"error": "unauthorized"})
            kind = "VIP" if q.get("email", "").lower() in VIP_EMAILS else "standard"
            return self._send(200, {"email": q.get("email"), "customerType": kind})
        if url.path == "/invoices":
            if not self._auth(BILLING_TOKEN):
                return self._send(401, {"error": "unauthorized"})
            return self._send(200, {"invoices": INVOICES.get(q.get("customer", "").lower(), [])})
        if url.path == "/echo":
            return self._send(200, {"method": self.command, "path": self.path,
                                    "headers": dict(self.headers.items()), "body": body.decode()})
        if url.path == "/redirect":
            return self._send(int(q.get("code", "302")), {}, {"Location": q["to"]})
        if url.path == "/charset":
            data = "café".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=x-no-such-codec")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return None
        if url.path == "/loop":
            return self._send(302, {}, {"Location": "/loop"})
        if url.path == "/big":
            n = int(q.get("n", "0"))
            if q.get("chunked"):
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                block = b"x" * 65536
                sent = 0
                try:
                    while sent < n:
                        part = block[: min(len(block), n - sent)]
                        self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                        sent += len(part)
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass
                return None
            return self._send(200, b"x" * n)
        if url.path == "/slow":
            time.sleep(float(q.get("s", "1")))
            return self._send(200, {"slept": True})
        return self._send(404, {"error": "not found"})


class CrmServer:
    """`tls=(certfile, keyfile)` serves HTTPS (make_test_certificates builds a CA and a leaf)."""

    def __init__(self, tls: tuple[str, str] | None = None) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
            self.url = f"https://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": SERVE_POLL_S}, daemon=True)

    def __enter__(self) -> CrmServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def make_test_certificates(directory: str, name: str) -> tuple[str, str, str]:
    """A throwaway CA and a server certificate for `name`, with the openssl CLI.
    Returns (ca_file, cert_file, key_file)."""
    def path(file: str) -> str:
        return os.path.join(directory, file)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=directory)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
            "-days", "2", "-subj", "/CN=deskflow test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key", "-out", "leaf.csr",
            "-subj", f"/CN={name}")
    with open(path("leaf.ext"), "w") as f:
        f.write(f"subjectAltName=DNS:{name}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
    openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", "leaf.pem", "-days", "2", "-extfile", "leaf.ext")
    return path("ca.pem"), path("leaf.pem"), path("leaf.key")
