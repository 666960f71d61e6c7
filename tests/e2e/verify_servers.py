#!/usr/bin/env python3
"""verify_servers.py - the servers test_verify.sh needs, on one loopback port:
a time-stamping authority for both Authenticode timestamp protocols and a
CRL distribution point.

Usage: verify_servers.py --dir DIR --chain CHAIN.pem --ts-config OPENSSL-TS.cnf

Listens on a free port of 127.0.0.1 (or --port) and prints
"listening on http://127.0.0.1:PORT" once ready.  TSA profiles are key and
certificate pairs DIR/tsa-NAME.key, DIR/tsa-NAME.pem.

  POST /ts/NAME         RFC 3161 (osslsigncode -ts): `openssl ts -reply` with
                        profile NAME, the chain from --chain in the token
  POST /ts-wrong/NAME   the same, but the token stamps another digest than the
                        one asked for (a token made for another signature)
  POST /legacy/NAME     the legacy Authenticode protocol (osslsigncode -t): the
                        request (base64 DER, or DER) holds the signature value
                        to countersign; the answer is a PKCS#7 SignedData over
                        it made by `openssl cms -sign` (contentType,
                        signingTime, messageDigest), DER,
                        application/octet-stream
  POST /legacy-wrong/NAME  the same over other bytes (wrong messageDigest)
  GET  /crl/FILE        DIR/www/FILE, application/pkix-crl; 404 if absent

Every request line is appended to DIR/requests.log.  Stops on SIGTERM/SIGINT.
"""
import argparse
import base64
import http.server
import os
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading


def der_items(buf, pos=0, end=None):
    """Yields (tag, start_of_value, end_of_value) of the DER TLVs in buf."""
    end = len(buf) if end is None else end
    while pos < end:
        tag = buf[pos]
        ln = buf[pos + 1]
        pos += 2
        if ln & 0x80:
            n = ln & 0x7F
            ln = int.from_bytes(buf[pos:pos + n], "big")
            pos += n
        yield tag, pos, pos + ln
        pos += ln


def last_octet_string(buf, pos=0, end=None):
    """The last primitive OCTET STRING anywhere in the DER buf (the
    signature value in an Authenticode TimeStampRequest, RFC-less but
    documented by Microsoft: SEQUENCE { OID, SEQUENCE { OID data,
    [0] { OCTET STRING } } })."""
    found = None
    for tag, s, e in der_items(buf, pos, end):
        if tag == 0x04:
            found = buf[s:e]
        elif tag & 0x20:
            inner = last_octet_string(buf, s, e)
            if inner is not None:
                found = inner
    return found


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, fmt, *args):
        with open(os.path.join(self.server.dir, "requests.log"), "a") as f:
            f.write("%s %s\n" % (self.command, self.path))

    def reply(self, code, ctype, body):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def profile(self, name):
        d = self.server.dir
        key, cert = os.path.join(d, "tsa-%s.key" % name), os.path.join(d, "tsa-%s.pem" % name)
        if "/" in name or not os.path.exists(key):
            return None
        return key, cert

    def do_GET(self):
        parts = self.path.split("/")
        if len(parts) == 3 and parts[1] == "crl" and parts[2] and not parts[2].startswith("."):
            p = os.path.join(self.server.dir, "www", parts[2])
            if os.path.isfile(p):
                with open(p, "rb") as f:
                    return self.reply(200, "application/pkix-crl", f.read())
        self.reply(404, "text/plain", b"not found\n")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        parts = self.path.split("/")
        prof = self.profile(parts[2]) if len(parts) == 3 else None
        if prof is None:
            return self.reply(404, "text/plain", b"no such TSA\n")
        with tempfile.TemporaryDirectory() as t:
            try:
                if parts[1] in ("ts", "ts-wrong"):
                    out = self.rfc3161(t, body, prof, parts[1] == "ts-wrong")
                    return self.reply(200, "application/timestamp-reply", out)
                if parts[1] in ("legacy", "legacy-wrong"):
                    out = self.legacy(t, body, prof, parts[1] == "legacy-wrong")
                    return self.reply(200, "application/octet-stream", out)
            except subprocess.CalledProcessError as e:
                sys.stderr.write("%s: %s\n" % (self.path, e.stderr.decode(errors="replace")))
                return self.reply(500, "text/plain", b"openssl failed\n")
        self.reply(404, "text/plain", b"not found\n")

    def rfc3161(self, t, query, prof, wrong):
        q = os.path.join(t, "q.tsq")
        with open(q, "wb") as f:
            f.write(query)
        if wrong:
            # A well-formed query for a digest nobody asked for.
            subprocess.run(["openssl", "ts", "-query", "-digest", "00" * 32, "-sha256",
                            "-cert", "-out", q], check=True, capture_output=True)
        r = os.path.join(t, "r.tsr")
        subprocess.run(["openssl", "ts", "-reply", "-config", self.server.ts_config,
                        "-queryfile", q, "-inkey", prof[0], "-signer", prof[1],
                        "-chain", self.server.chain, "-out", r],
                       check=True, capture_output=True)
        with open(r, "rb") as f:
            return f.read()

    def legacy(self, t, req, prof, wrong):
        if not req.startswith(b"\x30"):
            req = base64.b64decode(b"".join(req.split()))
        blob = last_octet_string(req)
        if blob is None:
            raise subprocess.CalledProcessError(1, "parse", stderr=b"no OCTET STRING in request")
        if wrong:
            blob = bytes(b ^ 0xFF for b in blob)
        i, o = os.path.join(t, "in.bin"), os.path.join(t, "out.p7")
        with open(i, "wb") as f:
            f.write(blob)
        subprocess.run(["openssl", "cms", "-sign", "-binary", "-nodetach", "-nosmimecap",
                        "-md", "sha256", "-signer", prof[1], "-inkey", prof[0],
                        "-certfile", self.server.chain, "-outform", "DER",
                        "-in", i, "-out", o], check=True, capture_output=True)
        with open(o, "rb") as f:
            return f.read()


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--chain", required=True)
    ap.add_argument("--ts-config", required=True)
    ap.add_argument("--port", type=int, default=0)
    a = ap.parse_args()
    srv = Server(("127.0.0.1", a.port), Handler)
    srv.dir, srv.chain, srv.ts_config = a.dir, a.chain, a.ts_config
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())
    print("listening on http://127.0.0.1:%d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
