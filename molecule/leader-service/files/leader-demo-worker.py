#!/usr/bin/env python3
"""leader-demo.service of the Molecule scenarios leader-service and fencing: the unit that runs on the
leader only (started and stopped by the role's shipped hook, leader_node_leader_unit).

    leader-demo-worker.py NODE_ID STATUS_URL STORE_URL

- Serves HTTP on port 8080 (200 on any GET): the tests see where the unit runs.
- Reads the epoch of the leadership that started it, once, from the local node's /status, and never
  again: it is this worker's fencing token for as long as it lives. A worker whose leader-node is paused
  keeps writing with it, which is what the fenced store must refuse once a newer leader has written.
- Every WRITE_INTERVAL_S: PUT STORE_URL/resources/journal with `Fencing-Token: <epoch>` and the body
  {"node", "epoch", "seq"}, and one line on stdout (journald) per result:
      write node=5 epoch=7 seq=12 sent=<unix s> received=<unix s> code=200|409|0 highest=<token>|-
  `sent` is taken before the request, `received` after its reply: the store handled the write in
  between. code 0: no reply (the store unreachable or too slow); highest: the store's token on a 409.
- SIGTERM (systemctl stop): the write in flight is finished and logged, then the worker exits.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HTTP_PORT = 8080
WRITE_INTERVAL_S = 0.05
REQUEST_TIMEOUT_S = 2.0
EPOCH_DEADLINE_S = 10.0

node_id, status_url, store_url = sys.argv[1], sys.argv[2], sys.argv[3].rstrip("/")
state = {"epoch": None, "accepted": 0, "refused": 0, "failed": 0}
stopping = threading.Event()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"leader-demo on node {node_id}: {json.dumps(state, sort_keys=True)}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # the tests poll every 100 ms


def leadership_epoch() -> int:
    """The epoch under which the local node leads now, i.e. the leadership whose hook run started us."""
    started = time.monotonic()
    last = None
    while time.monotonic() - started < EPOCH_DEADLINE_S:
        if stopping.is_set():
            sys.exit(0)  # stopped before it knew its epoch: it wrote nothing
        try:
            with urllib.request.urlopen(status_url, timeout=1) as reply:
                last = json.loads(reply.read().decode())
            if last.get("role") == "leader":
                return int(last["epoch"])
        except (OSError, ValueError) as exc:
            last = str(exc)
        time.sleep(0.05)
    sys.exit(f"node {node_id} did not report itself leader within {EPOCH_DEADLINE_S} s: {last!r}")


def write(epoch: int, seq: int) -> None:
    body = json.dumps({"node": int(node_id), "epoch": epoch, "seq": seq}).encode()
    request = urllib.request.Request(
        f"{store_url}/resources/journal", data=body, method="PUT", headers={"Fencing-Token": str(epoch)}
    )
    highest = "-"
    sent = time.time()
    try:
        with urllib.request.urlopen(request, timeout=REQUEST_TIMEOUT_S) as reply:
            code = reply.status
    except urllib.error.HTTPError as error:
        code = error.code
        with contextlib.suppress(OSError, ValueError):
            highest = str(json.loads(error.read().decode()).get("highest", "-"))
    except OSError:
        code = 0
    received = time.time()
    key = "accepted" if code == 200 else "refused" if code == 409 else "failed"
    state[key] += 1
    print(
        f"write node={node_id} epoch={epoch} seq={seq} sent={sent:.6f} received={received:.6f} "
        f"code={code} highest={highest}",
        flush=True,
    )


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    server = ThreadingHTTPServer(("0.0.0.0", HTTP_PORT), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    epoch = leadership_epoch()
    state["epoch"] = epoch
    print(f"worker node={node_id} epoch={epoch} store={store_url}", flush=True)
    seq = 0
    while not stopping.is_set():
        seq += 1
        write(epoch, seq)
        stopping.wait(WRITE_INTERVAL_S)
    print(f"worker node={node_id} epoch={epoch} stopped after {seq} writes: {state}", flush=True)


if __name__ == "__main__":
    main()
