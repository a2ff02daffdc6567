#!/usr/bin/python3
"""yaml2json.py - the OpenSPF RFC 7208 test suite (rfc7208-tests.yml) as JSON that C reads.

Run with Debian's python3-yaml (only to regenerate; the tests read the committed JSON):

    /usr/bin/python3 tests/conformance/spf/yaml2json.py \\
        tests/conformance/spf/rfc7208-tests.yml > tests/conformance/spf/rfc7208-tests.json

Output: {"source", "license", "octets", "semantics", "scenarios": [{"description", "zone",
"tests": [{"name", "spec", "description", "helo", "host", "mailfrom", "result": [...],
"explanation"?}]}]}, in the suite's order. "result" is always a list (the allowed results);
"explanation" is "DEFAULT" where the suite accepts an implementation's default.

Strings hold octets: each character U+0000 to U+00FF is one octet (the suite writes bytes as
"\\xEF" escapes, which YAML reads as those characters; JSON carries them as \\u00ef).

The zone is normalised here, once, so that every driver (the in-memory C one and the real DNS
server of tests/integration/test_spf_conformance.py) serves the same answers. The rules are
those of the suite's reference driver (pyspf's test harness):

  - names are lower-cased, without a trailing dot;
  - "TXT": [[strings...], ...]: each record a list of its character-strings;
  - "SPF" records (type 99) are kept as "SPF" and also served as TXT records, unless the name
    has TXT records of its own or "TXT: NONE" (RFC 7208 dropped type 99: checkers ask TXT only);
  - "A", "AAAA": addresses; "MX": [[preference, name]] (name "" is the root: a null MX);
    "PTR": [names]; "CNAME": name (followed by the server);
  - "TIMEOUT": true: a query for a type the name has no records of times out (TEMPFAIL)
    instead of answering NODATA;
  - a name not in the zone does not exist (NXDOMAIN).
"""

import json
import sys

import yaml

SEMANTICS = (
    "names lower-case; TXT records are lists of character-strings; SPF (type 99) records are "
    "also served as TXT unless the name has TXT records or 'TXT: NONE'; TIMEOUT: true makes "
    "queries for types without records time out; names not listed are NXDOMAIN"
)


def octets(s):
    """A YAML string as the octets it stands for, in a str of U+0000..U+00FF."""
    if all(ord(ch) < 256 for ch in s):
        return s
    return s.encode("utf-8").decode("latin-1")


def norm_name(name):
    name = str(name).strip().lower()
    return name[:-1] if name.endswith(".") and name != "." else name


def txt_record(value):
    """A TXT/SPF value: a string is one character-string, a list several (or none)."""
    if isinstance(value, list):
        return [octets(str(v)) for v in value]
    return [octets(str(value))]


def zone_of(zonedata):
    zone = {}
    for raw_name, entries in zonedata.items():
        name = norm_name(raw_name)
        rr = zone.setdefault(name, {})
        explicit_txt = False
        for entry in entries:
            if entry == "TIMEOUT":
                rr["TIMEOUT"] = True
                continue
            if not isinstance(entry, dict) or len(entry) != 1:
                raise ValueError(f"{raw_name}: unexpected zone entry {entry!r}")
            (rtype, value), = entry.items()
            rtype = rtype.upper()
            if rtype == "TXT":
                explicit_txt = True
                if value == "NONE":
                    continue
                rr.setdefault("TXT", []).append(txt_record(value))
            elif rtype == "SPF":
                if value == "NONE":
                    continue
                rr.setdefault("SPF", []).append(txt_record(value))
            elif rtype in ("A", "AAAA", "PTR"):
                rr.setdefault(rtype, []).append(str(value))
            elif rtype == "MX":
                pref, host = value
                rr.setdefault("MX", []).append([int(pref), str(host)])
            elif rtype == "CNAME":
                rr["CNAME"] = str(value)
            else:
                raise ValueError(f"{raw_name}: unknown record type {rtype}")
        rr.setdefault("_explicit_txt", False)
        rr["_explicit_txt"] = rr["_explicit_txt"] or explicit_txt
    for rr in zone.values():
        if not rr.pop("_explicit_txt") and "SPF" in rr:
            rr["TXT"] = list(rr["SPF"])
    return zone


def test_of(name, t):
    result = t["result"]
    out = {
        "name": name,
        "spec": str(t.get("spec", "")),
        "description": " ".join(str(t.get("description") or "").split()),
        "helo": octets(str(t["helo"])),
        "host": str(t["host"]),
        "mailfrom": octets(str(t["mailfrom"])),
        "result": result if isinstance(result, list) else [result],
    }
    if "explanation" in t:
        out["explanation"] = octets(str(t["explanation"]))
    return out


def convert(path):
    with open(path, "rb") as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    scenarios = []
    for doc in docs:
        scenarios.append({
            "description": doc.get("description", ""),
            "zone": zone_of(doc.get("zonedata") or {}),
            "tests": [test_of(n, t) for n, t in doc["tests"].items()],
        })
    return {
        "source": "rfc7208-tests.yml (openspf.org test suite, release 2014.04)",
        "license": "see LICENSE in this directory",
        "octets": "each character U+0000..U+00FF of a string is one octet",
        "semantics": SEMANTICS,
        "scenarios": scenarios,
    }


def main(argv):
    if len(argv) != 2:
        print(f"usage: {argv[0]} rfc7208-tests.yml > rfc7208-tests.json", file=sys.stderr)
        return 2
    json.dump(convert(argv[1]), sys.stdout, indent=1, ensure_ascii=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
