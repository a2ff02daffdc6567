"""dsncheck: parse a delivery status notification and check its structure.

parse_dsn(raw) takes the octets of a DSN as sent (an RFC 6522 multipart/report carrying an
RFC 3464 message/delivery-status, or RFC 6533's message/global-delivery-status for SMTPUTF8
mail), checks what a standards-aware receiver relies on, and returns what it says:

    {
      "headers":      {"from": ..., "to": ..., "subject": ..., ...},  # top level, unfolded
      "report_type":  "delivery-status" | "global-delivery-status",
      "global":       bool,            # RFC 6533 types
      "text":         str,             # the human-readable first part, decoded
      "per_message":  {"reporting-mta": "dns; mta.example.net", ...},
      "recipients":   [{"final-recipient": "rfc822; bob@example.org", "action": "failed",
                        "status": "5.1.1", ..., "final_type": "rfc822",
                        "final_address": "bob@example.org",
                        "original_type": ..., "original_address": ...}, ...],
      "returned":     None | "message" | "headers",
      "returned_type": "message/rfc822" | "text/rfc822-headers" | "message/global" | ...,
      "original_headers": {"subject": ..., ...} or None,  # of the returned original
      "original_body": str or None,    # when the whole message came back
    }

Field names are lower-case keys. Anything wrong raises DsnError naming it. Uses only the
standard library (Python's email package); run with /usr/bin/python3.
"""

import re
from email import policy
from email.message import Message
from email.parser import BytesParser, Parser
from email.utils import parsedate_to_datetime

ACTIONS = {"failed", "delayed", "delivered", "relayed", "expanded"}
STATUS_RE = re.compile(r"^[245]\.\d{1,3}\.\d{1,3}$")
TYPED_RE = re.compile(r"^([!-:<-~]+)\s*;\s*(.*)$", re.S)  # address-type ";" value
RETURNED_TYPES = {
    "message/rfc822": ("message", False),
    "text/rfc822-headers": ("headers", False),
    "message/global": ("message", True),
    "message/global-headers": ("headers", True),
}
DATE_FIELDS = ("arrival-date", "last-attempt-date", "will-retry-until")


class DsnError(ValueError):
    """The DSN is malformed; the message says how."""


def _check(cond, what):
    if not cond:
        raise DsnError(what)


def _text(value):
    """A str that may carry undecodable octets as surrogates (8-bit content read by the
    email package) back as proper UTF-8 text."""
    try:
        return value.encode("utf-8", "surrogateescape").decode("utf-8")
    except UnicodeError:
        return value


def _fields(msg):
    """The fields of a header block as {lower-case name: unfolded value}; a repeated field
    is an error (RFC 3464 allows each at most once per group)."""
    out = {}
    for name, value in msg.items():
        key = name.lower()
        _check(key not in out, f"field {name} repeated in one group")
        out[key] = _text(str(value)).strip()
    return out


def _typed(value, field):
    m = TYPED_RE.match(value)
    _check(m is not None, f"{field}: expected 'type; value', got {value!r}")
    return m.group(1).lower(), m.group(2).strip()


def _date(value, field):
    try:
        parsedate_to_datetime(value)
    except (TypeError, ValueError) as e:
        raise DsnError(f"{field}: not an RFC 5322 date: {value!r}") from e


def _check_lines(raw, boundary):
    """CRLF line ends and at most 998 octets a line (RFC 5322 §2.1.1), everywhere but in a
    returned original, which is included as it was."""
    delim = b"\r\n--" + boundary.encode("ascii")
    checked = raw
    parts = raw.split(delim)
    if len(parts) >= 4:  # preamble, text, status, original (+ epilogue)
        start = len(delim.join(parts[:3])) + len(delim)
        end = raw.find(delim, start)
        checked = raw[:start] + raw[end:] if end >= 0 else raw[:start]
    _check(b"\r\n" in raw and raw.endswith(b"\r\n"), "the message does not end with CRLF")
    for n, line in enumerate(checked.split(b"\r\n")):
        _check(b"\n" not in line and b"\r" not in line, f"bare CR or LF in line {n + 1}")
        _check(len(line) <= 998, f"line {n + 1} is {len(line)} octets, more than 998")


def _status_groups(part):
    """The groups of fields of a (global-)delivery-status part, as header blocks. The email
    package splits message/delivery-status into blocks itself; message/global-delivery-status
    it reads as one message whose body holds the groups after the first."""
    payload = part.get_payload()
    _check(isinstance(payload, list) and payload, "the delivery-status part is empty")
    if part.get_content_type() == "message/delivery-status":
        return [_fields(b) for b in payload]
    first = payload[0]
    groups = [_fields(first)]
    # decode=True gives the octets back (plain get_payload() turns 8-bit ones into U+FFFD).
    rest = (first.get_payload(decode=True) or b"").decode("utf-8", "replace")
    for block in re.split(r"\r?\n(?:[ \t]*\r?\n)+", rest):
        if block.strip():
            groups.append(_fields(Parser(policy=policy.default).parsestr(block, True)))
    return groups


def parse_dsn(raw, strict=True):
    """Parse and check a DSN (bytes). strict: also require what Drover always writes
    (Auto-Submitted, a text/plain first part, RFC 6533 types throughout a global DSN)."""
    _check(isinstance(raw, (bytes, bytearray)), "parse_dsn wants bytes")
    raw = bytes(raw)
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    headers = {k.lower(): _text(str(v)) for k, v in msg.items()}

    for name in ("from", "to", "date", "message-id", "subject", "mime-version"):
        _check(name in headers, f"no {name} header")
    _date(headers["date"], "Date")
    _check(headers["mime-version"].strip() == "1.0", "MIME-Version is not 1.0")
    if strict:
        auto = headers.get("auto-submitted", "")
        _check(auto.startswith("auto-"), f"Auto-Submitted is {auto!r} (RFC 3834)")
        _check("mailer-daemon@" in headers["from"].lower(), "From is not MAILER-DAEMON")

    _check(msg.get_content_type() == "multipart/report",
           f"Content-Type is {msg.get_content_type()}, not multipart/report")
    report_type = (msg.get_param("report-type") or "").lower()
    _check(report_type in ("delivery-status", "global-delivery-status"),
           f"report-type is {report_type!r}")
    boundary = msg.get_boundary()
    _check(boundary, "no MIME boundary")
    _check(len(boundary) <= 70, "boundary longer than 70 characters (RFC 2046)")
    _check_lines(raw, boundary)
    is_global = report_type == "global-delivery-status"

    parts = list(msg.iter_parts())
    _check(len(parts) in (2, 3), f"{len(parts)} parts, expected 2 or 3 (RFC 6522)")
    text_part, status_part = parts[0], parts[1]
    if strict:
        _check(text_part.get_content_type() == "text/plain",
               f"first part is {text_part.get_content_type()}")
    text = text_part.get_content() if text_part.get_content_maintype() == "text" else ""
    _check(status_part.get_content_type() == "message/" + report_type,
           f"second part is {status_part.get_content_type()}, report-type {report_type}")

    groups = _status_groups(status_part)
    _check(len(groups) >= 2, "no per-recipient fields")
    per_message, recipients = groups[0], groups[1:]
    _check("reporting-mta" in per_message, "no Reporting-MTA (RFC 3464 §2.2.2)")
    _typed(per_message["reporting-mta"], "Reporting-MTA")
    for f in DATE_FIELDS:
        if f in per_message:
            _date(per_message[f], f)
    if not is_global:
        for g in groups:
            for k, v in g.items():
                _check(v.isascii(), f"non-ASCII {k} in message/delivery-status")

    for i, r in enumerate(recipients):
        where = f"recipient {i + 1}"
        _check("final-recipient" in r, f"{where}: no Final-Recipient (RFC 3464 §2.3.2)")
        r["final_type"], r["final_address"] = _typed(r["final-recipient"], "Final-Recipient")
        if "original-recipient" in r:
            r["original_type"], r["original_address"] = _typed(r["original-recipient"],
                                                                "Original-Recipient")
        _check(r.get("action") in ACTIONS, f"{where}: Action {r.get('action')!r}")
        _check(STATUS_RE.match(r.get("status", "")) is not None,
               f"{where}: Status {r.get('status')!r} is not an RFC 3463 code")
        for f in ("remote-mta", "diagnostic-code"):
            if f in r:
                _typed(r[f], f)
        for f in DATE_FIELDS:
            if f in r:
                _date(r[f], f)
        _check("will-retry-until" not in r or r["action"] == "delayed",
               f"{where}: Will-Retry-Until without Action: delayed (RFC 3464 §2.3.9)")
        if strict and not is_global:
            _check(r["final_type"] != "utf-8" or r["final_address"].isascii(),
                   f"{where}: raw UTF-8 address outside a global DSN")

    returned = returned_type = original_headers = original_body = None
    if len(parts) == 3:
        part = parts[2]
        returned_type = part.get_content_type()
        _check(returned_type in RETURNED_TYPES, f"third part is {returned_type}")
        returned, type_is_global = RETURNED_TYPES[returned_type]
        if strict:
            _check(type_is_global == is_global,
                   f"third part {returned_type} in a {report_type} report")
        payload = part.get_payload()
        if isinstance(payload, list):  # message/*: the email package parsed it
            inner = payload[0]
        else:  # text/rfc822-headers
            inner = Parser(policy=policy.default).parsestr(_text(payload), True)
        _check(isinstance(inner, Message), "third part is not a message")
        original_headers = {k.lower(): _text(str(v)) for k, v in inner.items()}
        if returned == "message" and not inner.is_multipart():
            original_body = (inner.get_payload(decode=True) or b"").decode("utf-8", "replace")
        else:
            _check(not inner.get_payload(), "a headers part with a body")

    return {
        "headers": headers,
        "report_type": report_type,
        "global": is_global,
        "text": text,
        "per_message": per_message,
        "recipients": recipients,
        "returned": returned,
        "returned_type": returned_type,
        "original_headers": original_headers,
        "original_body": original_body,
    }
