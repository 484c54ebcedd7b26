"""test_vectors.py -- the Python codec against proto/vectors.json, and PROTOCOL.md section 7 against the same file.

    python3 -m unittest discover -s proto/python/tests -t proto/python
    python3 proto/python/tests/test_vectors.py --print   # the tables PROTOCOL.md 7 must show
"""

import json
import os
import re
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PKG = os.path.dirname(HERE)
REPO = os.path.dirname(os.path.dirname(PKG))
sys.path.insert(0, PKG)

from subway import codec  # noqa: E402
from subway.errors import ProtocolError, code_name  # noqa: E402

VECTORS = os.path.join(REPO, "proto", "vectors.json")
PROTOCOL_MD = os.path.join(REPO, "proto", "PROTOCOL.md")
START_MODES = {v: k for k, v in codec.START_NAMES.items()}

with open(VECTORS) as f:
    DATA = json.load(f)


def unhex(s):
    return bytes.fromhex(s.replace(" ", ""))


def wire_value(kind, v):
    """A vectors.json field value as the codec gives and takes it."""
    if kind == codec.K_BYTES:
        if v is None:
            return None
        return unhex(v["hex"]) if isinstance(v, dict) else v.encode("utf-8")
    if kind == codec.K_START:
        mode = START_MODES[v[0]]
        return [mode, [tuple(p) for p in v[1]] if mode == codec.START_POSITIONS else v[1]]
    if kind == codec.K_HEADERS:
        return [(n, wire_value(codec.K_BYTES, x)) for n, x in v]
    if kind == codec.K_POSITIONS:
        return [tuple(p) for p in v]
    return v


def wire_fields(vec):
    ftype = codec.TYPES_BY_NAME[vec["type"]]
    names, kinds, _ = codec.SPEC[ftype]
    return ftype, {n: wire_value(k, vec["fields"][n]) for n, k in zip(names, kinds) if n in vec["fields"]}


# ------------------------------------------------------------ the doc's tables


def render_value(name, v):
    """A field value as PROTOCOL.md 7 writes it."""
    if v is None:
        return "nil"
    if isinstance(v, dict):
        return "bytes " + v["hex"]
    if isinstance(v, str):
        if len(v) > 8 and v == v[0] * len(v):
            return '"%s" x %d' % (v[0], len(v))
        return json.dumps(v)
    if isinstance(v, list):
        if name == "start":
            return "%s %s" % (v[0], render_value("", v[1]))
        return "[" + ", ".join(render_value("", x) for x in v) + "]"
    if name == "code":
        return "%d (%s)" % (v, code_name(v))
    return str(v)


def render_frames():
    rows = ["| frame | fields | hex |", "|---|---|---|"]
    for vec in DATA["frames"]:
        names = codec.SPEC[codec.TYPES_BY_NAME[vec["type"]]][0]
        text = ", ".join("%s=%s" % (n, render_value(n, vec["fields"][n])) for n in names if n in vec["fields"])
        if "note" in vec:
            text += " (%s)" % vec["note"]
        rows.append("| %s | %s | `%s` |" % (vec["name"], text, vec["hex"]))
    return rows


def render_refused():
    rows = ["| frame | hex | code | text |", "|---|---|---|---|"]
    for vec in DATA["refused"]:
        rows.append("| %s | `%s` | %d %s | `%s` |" % (vec["name"], vec["hex"], vec["code"], vec["error"], vec["text"]))
    return rows


def doc_table(text, heading):
    """The lines of the first table after the heading line."""
    at = text.index("\n" + heading + "\n")
    lines = text[at:].split("\n")[2:]
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    out = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        out.append(line)
    return out


def cells(line):
    return [c.strip() for c in line.strip().strip("|").split(" | ")]


# ---------------------------------------------------------------------- tests


class FramesTest(unittest.TestCase):
    def test_every_type_and_start_mode_has_a_vector(self):
        types = {v["type"] for v in DATA["frames"]}
        self.assertEqual(types, set(codec.TYPE_NAMES.values()))
        modes = {v["fields"]["start"][0] for v in DATA["frames"] if "start" in v["fields"]}
        self.assertEqual(modes, set(codec.START_NAMES.values()))

    def test_encode(self):
        for vec in DATA["frames"]:
            with self.subTest(vec["name"]):
                ftype, fields = wire_fields(vec)
                self.assertEqual(codec.encode_fields(ftype, fields).hex(), unhex(vec["hex"]).hex())

    def test_decode(self):
        for vec in DATA["frames"]:
            with self.subTest(vec["name"]):
                ftype, fields = wire_fields(vec)
                got = codec.fields(codec.decode(unhex(vec["hex"])))
                self.assertEqual(got.pop("type"), vec["type"])
                if "headers" in got and not got["headers"]:
                    del got["headers"]
                self.assertEqual(got, fields)

    def test_byte_by_byte_then_back_to_back(self):
        d = codec.Decoder()
        stream = b"".join(unhex(v["hex"]) for v in DATA["frames"])
        got = []
        for i in range(len(stream)):
            d.feed(stream[i:i + 1])
            f = d.next()
            if f is not None:
                got.append(codec.TYPE_NAMES[f[0]])
                self.assertIsNone(d.next())
        self.assertEqual(got, [v["type"] for v in DATA["frames"]])
        d = codec.Decoder()
        d.feed(stream)
        self.assertEqual([codec.fields(d.next())["type"] for _ in DATA["frames"]], got)
        self.assertIsNone(d.next())
        self.assertEqual(d.buffered(), 0)


class RefusedTest(unittest.TestCase):
    def test_refused_with_code_and_text(self):
        for vec in DATA["refused"]:
            with self.subTest(vec["name"]):
                d = codec.Decoder(DATA["max_frame"])
                d.feed(unhex(vec["hex"]))
                with self.assertRaises(ProtocolError) as cm:
                    d.next()
                self.assertEqual((cm.exception.code, cm.exception.name, cm.exception.text),
                                 (vec["code"], vec["error"], vec["text"]))

    def test_unknown_type_is_skipped(self):
        d = codec.Decoder()
        d.feed(unhex("00000004 93 12 01 90") + unhex("00000003 92 0b 2a"))
        with self.assertRaises(ProtocolError) as cm:
            d.next()
        self.assertEqual(cm.exception.code, 5)
        self.assertEqual(d.next(), [codec.PONG, 42])

    def test_limit_is_judged_from_the_prefix(self):
        d = codec.Decoder(100)
        d.feed(unhex("00000065"))
        with self.assertRaises(ProtocolError) as cm:
            d.next()
        self.assertEqual((cm.exception.name, cm.exception.text),
                         ("FRAME_TOO_LARGE", "frame of 101 bytes exceeds the 100-byte limit"))
        d = codec.Decoder(100)
        d.feed(unhex("00000064"))
        self.assertIsNone(d.next())


class DocTest(unittest.TestCase):
    """PROTOCOL.md section 7 shows vectors.json: run this file with
    --print for the tables it must hold."""

    def setUp(self):
        with open(PROTOCOL_MD) as f:
            self.doc = f.read()

    def check(self, heading, want):
        got = doc_table(self.doc, heading)
        self.assertEqual([cells(x) for x in got], [cells(x) for x in want],
                         "PROTOCOL.md's table under %r differs from proto/vectors.json; it should be:\n%s"
                         % (heading, "\n".join(want)))

    def test_frames_table(self):
        self.check("## 7. Golden vectors", render_frames())

    def test_refused_table(self):
        self.check("### 7.2 Frames that must be refused", render_refused())

    def test_doc_points_at_the_file(self):
        self.assertIn("proto/vectors.json", self.doc[self.doc.index("## 7. Golden vectors"):])


if __name__ == "__main__":
    if sys.argv[1:] == ["--print"]:
        print("\n".join(render_frames()))
        print()
        print("\n".join(render_refused()))
    else:
        unittest.main()
