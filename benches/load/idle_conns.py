#!/usr/bin/env python3
"""Open many keep-alive connections, send one protected GET on each, then keep them all open.

Plain sockets (no HTTP library), driven by asyncio so 10,000 of them fit in one process.
  idle_conns.py --port P --count N [--parallel K] [--path /hello] --ready-file F --stop-file S [--hold-max SECONDS]
The bearer token comes from the environment variable BENCH_TOKEN.

Once every connection has its answer, a JSON summary is written to --ready-file; the
connections then stay open until --stop-file appears (or --hold-max passes), after which the
script counts how many the server still holds open, prints a final JSON line and exits.
"""
import argparse
import asyncio
import json
import os
import socket
import sys
import time


async def recv_response(loop, sock, deadline):
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), max(0.1, deadline - time.monotonic()))
        if not chunk:
            raise ConnectionError("closed before the response head")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if "content-length" in headers:
        need = int(headers["content-length"])
        while len(body) < need:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), max(0.1, deadline - time.monotonic()))
            if not chunk:
                raise ConnectionError("closed mid-body")
            body += chunk
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        while not body.endswith(b"0\r\n\r\n"):
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), max(0.1, deadline - time.monotonic()))
            if not chunk:
                raise ConnectionError("closed mid-body")
            body += chunk
    return status, headers.get("connection", "").lower()


async def open_one(loop, args, request, sem, deadline, results, socks):
    async with sem:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", args.port)), max(0.1, deadline - time.monotonic()))
            await loop.sock_sendall(sock, request)
            status, conn_hdr = await recv_response(loop, sock, deadline)
        except (OSError, ConnectionError, asyncio.TimeoutError, ValueError, IndexError) as e:
            sock.close()
            key = type(e).__name__
            results["errors"][key] = results["errors"].get(key, 0) + 1
            return
        results["status"][str(status)] = results["status"].get(str(status), 0) + 1
        if conn_hdr == "close":
            results["server_said_close"] += 1
        socks.append(sock)


def still_open(socks):
    n = 0
    for s in socks:
        try:
            data = s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            if data:
                n += 1  # unexpected bytes, but the connection is alive
        except BlockingIOError:
            n += 1  # nothing to read and not closed: open
        except OSError:
            pass
    return n


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--parallel", type=int, default=200)
    p.add_argument("--path", default="/hello")
    p.add_argument("--ready-file", required=True)
    p.add_argument("--stop-file", required=True)
    p.add_argument("--open-timeout", type=float, default=180.0)
    p.add_argument("--hold-max", type=float, default=300.0)
    args = p.parse_args()
    token = os.environ.get("BENCH_TOKEN", "")
    request = (
        f"GET {args.path} HTTP/1.1\r\nHost: 127.0.0.1:{args.port}\r\n"
        f"Authorization: Bearer {token}\r\nConnection: keep-alive\r\n\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    results = {"status": {}, "errors": {}, "server_said_close": 0}
    socks = []
    sem = asyncio.Semaphore(args.parallel)
    t0 = time.monotonic()
    deadline = t0 + args.open_timeout
    await asyncio.gather(*(open_one(loop, args, request, sem, deadline, results, socks) for _ in range(args.count)))
    results["open"] = len(socks)
    results["seconds_to_open"] = round(time.monotonic() - t0, 2)
    with open(args.ready_file + ".tmp", "w") as f:
        json.dump(results, f)
    os.replace(args.ready_file + ".tmp", args.ready_file)
    hold_until = time.monotonic() + args.hold_max
    while not os.path.exists(args.stop_file) and time.monotonic() < hold_until:
        await asyncio.sleep(0.2)
    results["still_open_at_end"] = still_open(socks)
    results["held_seconds"] = round(time.monotonic() - t0 - results["seconds_to_open"], 1)
    for s in socks:
        s.close()
    print(json.dumps(results))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(130)
