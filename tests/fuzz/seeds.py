#!/usr/bin/env python3
"""seeds.py -- writes the fuzzers' seed corpora (tests/fuzz/corpus/TARGET) from proto/vectors.json and tokens signed with tests/fuzz/keys/.

    python3 tests/fuzz/seeds.py

Seeds are named seed-*; regression inputs of fixed bugs (named after the
bug) sit beside them and are left alone. Tokens expire in 2100, so they
stay valid for fuzz_jwt, whose clock says 2026-01-01.
"""

import importlib.machinery
import importlib.util
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
KEYS = os.path.join(HERE, "keys")
EXP_2100 = 4102444800


def load_minter():
    path = os.path.join(REPO, "deploy", "subway-token")
    loader = importlib.machinery.SourceFileLoader("subway_token", path)
    spec = importlib.util.spec_from_loader("subway_token", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def write_all(target, seeds):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for name in os.listdir(d):
        if name.startswith("seed-"):
            os.remove(os.path.join(d, name))
    for name, data in seeds.items():
        with open(os.path.join(d, "seed-" + name), "wb") as f:
            f.write(data)


def proto_seeds():
    with open(os.path.join(REPO, "proto", "vectors.json")) as f:
        v = json.load(f)
    out = {}
    frames = []
    for i, fr in enumerate(v["frames"]):
        raw = bytes.fromhex(fr["hex"].replace(" ", ""))
        frames.append(raw)
        out["%02d-%s" % (i, fr["name"].replace(" ", "_").replace("/", "_"))] = raw
    for i, fr in enumerate(v.get("refused", [])):
        if "hex" in fr:
            out["refused-%02d" % i] = bytes.fromhex(fr["hex"].replace(" ", ""))
    out["stream"] = b"".join(frames)    # every vector, back to back
    return out


def jwt_seeds(m):
    secret = m.read_secret(os.path.join(KEYS, "hmac.key"))
    claims = {"sub": "fuzz", "iat": 1767225600, "exp": EXP_2100,
              "subway": {"subscribe": ["orders/*", "search.*/cust-?"], "publish": ["orders/cust-42"]}}
    out = {}
    out["hs256"] = b"\x00" + m.mint(claims, "HS256", hmac_key=secret).encode()
    out["rs256"] = b"\x00" + m.mint(claims, "RS256", private_key_file=os.path.join(KEYS, "rsa.pem")).encode()
    out["es256"] = b"\x00" + m.mint(claims, "ES256", private_key_file=os.path.join(KEYS, "ec.pem")).encode()
    out["nbf"] = b"\x00" + m.mint(dict(claims, nbf=1767225600), "HS256", hmac_key=secret).encode()
    # Odd first byte: header and payload in clear, the harness signs them.
    signed = {
        "plain": ({"alg": "HS256", "typ": "JWT"}, claims),
        "no-exp": ({"alg": "HS256"}, {"sub": "x"}),
        "crit": ({"alg": "HS256", "crit": ["exp"]}, claims),
        "rs-header": ({"alg": "RS256"}, claims),
        "numbers": ({"alg": "HS256"}, {"sub": "n", "exp": 1e13, "nbf": 1767225600.5}),
        "acl-odd": ({"alg": "HS256"}, {"sub": "a", "subway": {"subscribe": ["*/*", "a/", "/b", 7],
                                                                 "publish": "orders/*"}}),
    }
    for name, (h, p) in signed.items():
        out["signed-" + name] = b"\x01" + json.dumps(h).encode() + b"\n" + json.dumps(p).encode()
    return out


def acl_seeds():
    return {
        "exact": b"\x00orders\ncust-42\norders/cust-42",
        "glob": b"\x00search.a\ncust-1\nsearch.*/cust-?\norders/*",
        "every-key": b"\x01orders\n\norders/*\norders/cust-*",
        "publish": b"\x02orders\nk\x00\xff/x\norders/k*",
    }


def main():
    m = load_minter()
    write_all("proto", proto_seeds())
    write_all("jwt", jwt_seeds(m))
    write_all("acl", acl_seeds())


if __name__ == "__main__":
    main()
