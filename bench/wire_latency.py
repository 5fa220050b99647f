#!/usr/bin/env python3
"""Splits a client's request latency at a proxy's listening socket (bench/wire-latency).

    bench/wire_latency.py CAPTURE.pcap PROXY_PORT

CAPTURE is a tcpdump capture (classic pcap, microsecond or nanosecond timestamps) of the
client side of one proxy on loopback, the data segments of `tcp port PROXY_PORT`. The client
must not pipeline (wrk does not): on each connection a request is the first data segment from
the client after the previous response, and its response is the first data segment from the
proxy after it. Loopback hands a segment to the receiver when the sender writes it, so a
segment's timestamp is the time of the write(2) that sent it.

Prints two distributions, in milliseconds, at the percentiles of PERCENTILES:
- `proxy`: request segment -> response segment, what the proxy and its upstream took;
- `client`: response segment -> the next request on the same connection, the client's turn
  (for wrk: waking up, reading the response, writing the next request).
wrk's own latency is about the sum of the two around one request. Then `connections`: the
spread of the per-connection p99 of each, to tell one slow group of connections (one client
thread that shares a CPU with something) from a tail that all of them share.
Exits 2 when the capture is not a pcap file it can read or holds no request.
"""
import struct
import sys

PERCENTILES = (50, 90, 95, 99, 99.5, 99.9)


def segments(path):
    """Yields (time in seconds, source port, destination port, payload bytes) per TCP segment."""
    with open(path, "rb") as f:
        header = f.read(24)
        if len(header) < 24:
            raise ValueError("not a pcap file (too short)")
        magic = struct.unpack("<I", header[:4])[0]
        if magic == 0xA1B2C3D4:
            scale = 1e-6
        elif magic == 0xA1B23C4D:
            scale = 1e-9
        else:
            raise ValueError("not a little-endian classic pcap file (magic %#x)" % magic)
        link = struct.unpack("<I", header[20:24])[0]
        # Link-layer header bytes: Ethernet (what Linux gives lo), BSD null, cooked v1 and v2.
        link_bytes = {1: 14, 0: 4, 113: 16, 276: 20}.get(link)
        if link_bytes is None:
            raise ValueError("unsupported link type %d" % link)
        while True:
            record = f.read(16)
            if len(record) < 16:
                return
            sec, frac, captured, _ = struct.unpack("<IIII", record)
            data = f.read(captured)
            ip = data[link_bytes:]
            if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
                continue  # IPv4 TCP only (the benchmark listens on 127.0.0.1)
            ihl = (ip[0] & 15) * 4
            tcp = ip[ihl:]
            if len(tcp) < 13:
                continue
            sport, dport = struct.unpack(">HH", tcp[:4])
            payload = struct.unpack(">H", ip[2:4])[0] - ihl - (tcp[12] >> 4) * 4
            yield sec + frac * scale, sport, dport, payload


def percentile(sorted_values, p):
    """The value at percentile p (0-100) of an ascending list (nearest rank, no interpolation)."""
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * p / 100))]


def split(path, port):
    """The capture's requests to `port`, split: two dicts, the proxy's part and the client's
    turn, each mapping a client port (one connection) to its durations in seconds, in order.
    A request's later segments and a response's later segments are not counted again. Raises
    OSError or ValueError for a file it cannot read."""
    waiting = {}  # client port -> time of its unanswered request
    answered = {}  # client port -> time of its last response
    proxy, client = {}, {}
    for t, sport, dport, payload in segments(path):
        if payload <= 0:
            continue
        if dport == port and sport not in waiting:
            waiting[sport] = t
            if sport in answered:
                client.setdefault(sport, []).append(t - answered.pop(sport))
        elif sport == port and dport in waiting:
            proxy.setdefault(dport, []).append(t - waiting.pop(dport))
            answered[dport] = t
    return proxy, client


def main(argv):
    if len(argv) != 3 or not argv[2].isdigit():
        print("usage: " + __doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    port = int(argv[2])
    try:
        proxy, client = split(argv[1], port)
    except (OSError, ValueError) as e:
        print("wire_latency: %s: %s" % (argv[1], e), file=sys.stderr)
        return 2
    if not proxy:
        print("wire_latency: no request answered on port %d in %s" % (port, argv[1]),
              file=sys.stderr)
        return 2
    for name, per_connection in (("proxy", proxy), ("client", client)):
        values = sorted(v for vs in per_connection.values() for v in vs)
        print("%-7s n=%-8d %s" % (name, len(values), " ".join(
            "p%s %.2f" % (p, percentile(values, p) * 1000) for p in PERCENTILES)))
    for name, per_connection in (("proxy", proxy), ("client", client)):
        p99s = sorted(percentile(sorted(vs), 99) * 1000 for vs in per_connection.values() if vs)
        if p99s:
            print("connections %-7s p99 over %d connections: min %.2f median %.2f max %.2f" % (
                name, len(p99s), p99s[0], percentile(p99s, 50), p99s[-1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
