#!/usr/bin/env python3
"""tsa_standin.py - a stand-in RFC 3161 time-stamping authority for the tests.

Usage: tsa_standin.py --key TSA.key --cert TSA.pem --chain CHAIN.pem
                      --config OPENSSL-TS.cnf --log REQUESTS.log [--stall SECS]

Listens on a free port of 127.0.0.1 and prints "listening on http://127.0.0.1:PORT"
once ready.  Every POST is answered by `openssl ts -reply` with the key and
certificate given, except that some paths misbehave on purpose:

  /bad400     HTTP 400, text/plain
  /html       HTTP 200, text/html (a captive portal, a wrong URL)
  /stall      no answer for --stall seconds (default 60): past any client timeout
  /wrongtype  a valid reply, but Content-Type application/octet-stream
  /flaky      HTTP 503 to every other request, a valid reply in between
  /garbage    HTTP 200, application/timestamp-reply, but not DER
  anything else: a valid reply, application/timestamp-reply

Each request's path is appended to the log file, one line each, so a test can
tell which URLs were asked.  Stops on SIGTERM or SIGINT.
"""
import argparse
import http.server
import os
import signal
import socketserver
import subprocess
import sys
import tempfile
import threading
import time

MAX_QUERY = 64 * 1024


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def make_handler(args):
    lock = threading.Lock()      # openssl ts updates one serial file
    flaky = {"n": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):
            pass

        def reply(self, code, ctype, body):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(body)

        def stamp(self, query):
            with tempfile.TemporaryDirectory() as d, lock:
                q = os.path.join(d, "query.tsq")
                r = os.path.join(d, "reply.tsr")
                with open(q, "wb") as f:
                    f.write(query)
                p = subprocess.run(["openssl", "ts", "-reply", "-config", args.config,
                                    "-queryfile", q, "-inkey", args.key, "-signer", args.cert,
                                    "-chain", args.chain, "-out", r],
                                   capture_output=True)
                if p.returncode != 0 or not os.path.exists(r):
                    sys.stderr.write(p.stderr.decode(errors="replace"))
                    return None
                with open(r, "rb") as f:
                    return f.read()

        def do_GET(self):
            self.reply(405, "text/plain", b"use POST\n")

        def do_POST(self):
            path = self.path.split("?")[0]
            with open(args.log, "a") as f:
                f.write(path + "\n")
            n = int(self.headers.get("Content-Length") or 0)
            if n <= 0 or n > MAX_QUERY:
                self.reply(400, "text/plain", b"bad length\n")
                return
            query = self.rfile.read(n)
            if path == "/bad400":
                self.reply(400, "text/plain", b"bad request: this TSA does not like you\n")
                return
            if path == "/html":
                self.reply(200, "text/html", b"<html><body>Please log in</body></html>\n")
                return
            if path == "/stall":
                time.sleep(args.stall)
                return
            if path == "/garbage":
                self.reply(200, "application/timestamp-reply", b"\x30\x82garbage")
                return
            if path == "/flaky":
                flaky["n"] += 1
                if flaky["n"] % 2 == 1:
                    self.reply(503, "text/plain", b"busy, try again\n")
                    return
            if self.headers.get("Content-Type") != "application/timestamp-query":
                self.reply(415, "text/plain", b"want application/timestamp-query\n")
                return
            resp = self.stamp(query)
            if resp is None:
                self.reply(500, "text/plain", b"openssl ts -reply failed\n")
                return
            ctype = "application/octet-stream" if path == "/wrongtype" \
                else "application/timestamp-reply"
            self.reply(200, ctype, resp)

    return Handler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--key", required=True)
    ap.add_argument("--cert", required=True)
    ap.add_argument("--chain", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--stall", type=float, default=60)
    args = ap.parse_args()
    srv = Server(("127.0.0.1", 0), make_handler(args))
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=srv.shutdown).start())
    print("listening on http://127.0.0.1:%d" % srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    srv.server_close()


if __name__ == "__main__":
    main()
