#!/usr/bin/env python3
"""bench/wire_latency.py on captures written here, with known times: what it counts as a
request and a response, both timestamp resolutions, and its errors."""
import io
import os
import struct
import sys
import tempfile
import unittest
from contextlib import redirect_stderr, redirect_stdout

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
import wire_latency  # noqa: E402

PROXY = 8080


def segment(sport, dport, payload):
    """An Ethernet + IPv4 + TCP (20-byte header) frame carrying `payload` bytes."""
    tcp = struct.pack(">HHIIBBHHH", sport, dport, 0, 0, 5 << 4, 0x18, 65535, 0, 0)
    ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + payload, 0, 0, 64, 6, 0,
                     b"\x7f\x00\x00\x01", b"\x7f\x00\x00\x01")
    return b"\x00" * 12 + b"\x08\x00" + ip + tcp + b"x" * payload


def write_pcap(path, packets, nano=False):
    """packets: (seconds, sport, dport, payload bytes)."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B23C4D if nano else 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for t, sport, dport, payload in packets:
            frame = segment(sport, dport, payload)
            sec = int(t)
            frac = round((t - sec) * (1e9 if nano else 1e6))
            f.write(struct.pack("<IIII", sec, frac, len(frame), len(frame)))
            f.write(frame)


# Two connections. 40001: request at 1.000, its ACK (no payload), a second request segment
# (not a new request), response at 1.002 in two segments, next request at 1.0025, response at
# 1.0035. 40002: request at 1.001, response at 1.005; a response with no request is ignored.
PACKETS = [
    (1.000000, 40001, PROXY, 120),
    (1.000010, PROXY, 40001, 0),
    (1.000020, 40001, PROXY, 30),
    (1.001000, 40002, PROXY, 120),
    (1.002000, PROXY, 40001, 150),
    (1.002100, PROXY, 40001, 2),
    (1.002500, 40001, PROXY, 120),
    (1.003500, PROXY, 40001, 150),
    (1.005000, PROXY, 40002, 150),
    (1.006000, PROXY, 40002, 150),
]


class WireLatencyTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.addCleanup(self.dir.cleanup)

    def capture(self, name, packets, nano=False):
        path = os.path.join(self.dir.name, name)
        write_pcap(path, packets, nano)
        return path

    def assertSplit(self, path):
        proxy, client = wire_latency.split(path, PROXY)
        self.assertEqual(sorted(proxy), [40001, 40002])
        self.assertEqual([round(v * 1e6) for v in proxy[40001]], [2000, 1000])
        self.assertEqual([round(v * 1e6) for v in proxy[40002]], [4000])
        self.assertEqual({k: [round(v * 1e6) for v in vs] for k, vs in client.items()},
                         {40001: [500]})

    def test_requests_and_responses_are_first_data_segments(self):
        self.assertSplit(self.capture("us.pcap", PACKETS))

    def test_nanosecond_captures(self):
        self.assertSplit(self.capture("ns.pcap", PACKETS, nano=True))

    def test_main_prints_both_parts_in_milliseconds(self):
        out = io.StringIO()
        with redirect_stdout(out):
            rc = wire_latency.main(["wire_latency.py", self.capture("us.pcap", PACKETS), str(PROXY)])
        self.assertEqual(rc, 0)
        lines = out.getvalue().splitlines()
        self.assertTrue(lines[0].startswith("proxy   n=3 "), lines[0])
        self.assertIn("p50 2.00", lines[0])
        self.assertIn("p99.9 4.00", lines[0])
        self.assertTrue(lines[1].startswith("client  n=1 "), lines[1])
        self.assertIn("p50 0.50", lines[1])
        self.assertIn("over 2 connections: min 2.00 median 4.00 max 4.00", lines[2])

    def test_errors_exit_2(self):
        not_pcap = os.path.join(self.dir.name, "text")
        with open(not_pcap, "w") as f:
            f.write("not a capture at all\n")
        empty = self.capture("empty.pcap", [(1.0, 40001, PROXY, 0)])
        for argv in (["w"], ["w", not_pcap, "x"], ["w", not_pcap, "80"],
                     ["w", os.path.join(self.dir.name, "missing"), "80"], ["w", empty, str(PROXY)]):
            err = io.StringIO()
            with redirect_stderr(err), redirect_stdout(io.StringIO()):
                self.assertEqual(wire_latency.main(argv), 2, argv)
            self.assertTrue(err.getvalue().strip(), argv)


if __name__ == "__main__":
    unittest.main()
