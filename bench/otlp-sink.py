#!/usr/bin/env python3
"""An OTLP/HTTP trace endpoint that accepts every export and keeps nothing: the receiving end
of bench/tracing.sh, so the server pays for encoding and sending spans, not for a collector.
Prints its port on stdout, then the number of exports and bytes received when stopped.
Usage: bench/otlp-sink.py"""

import http.server
import signal
import sys
import threading

exports = 0
received = 0
lock = threading.Lock()


class Sink(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        global exports, received
        length = int(self.headers.get("Content-Length", "0"))
        body = self.rfile.read(length)
        with lock:
            exports += 1
            received += len(body)
        # An empty ExportTraceServiceResponse: zero bytes of protobuf.
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
print(server.server_address[1], flush=True)


def stop(*_):
    threading.Thread(target=server.shutdown).start()


signal.signal(signal.SIGTERM, stop)
server.serve_forever()
print(f"otlp-sink: {exports} exports, {received} bytes", file=sys.stderr)
