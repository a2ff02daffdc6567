#!/usr/bin/python3
"""tally.py - what became of every acknowledged recipient, for bench/realistic.sh.

Reads the load generator's acknowledgements (loadgen -o: message-id, then the accepted
recipients, tab-separated), the sink's record (sink -o: A/T/P/D lines, see sink.c) and,
optionally, the MTA's queue (JSON lines: `drover queue list --json` or `postqueue -j`).

    tally.py wait    --acks F --record F --until first|final [--deadline S]
    tally.py verdict --acks F --record F [--queue F]

wait: polls the record file (it grows while the MTA delivers) until
    first   every acknowledged recipient has had an answer from the sink: accepted (A),
            refused for good (P) or deferred (T) - each message has been tried once;
    final   every acknowledged recipient was accepted or refused for good, and every refused
            one was reported in a DSN that reached the sink (D);
then prints the wall-clock time (seconds since the epoch) when it saw that, and exits 0; at
the deadline it prints what is missing and exits 1.

verdict: one line of counts, then exits 0 unless a recipient was lost or duplicated:
    delivered   accepted by the sink exactly once
    bounced     refused for good (550) and not accepted
    queued      still in the MTA's queue, not accepted and not refused (waiting for a retry)
    lost        acknowledged, and none of the above
    duplicated  accepted by the sink more than once
    dsn_missing bounced, but no DSN reached the sink naming it
"""

import argparse
import json
import sys
import time


def read_acks(path):
    rcpts = {}
    messages = 0
    with open(path) as f:
        for line in f:
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 2:
                continue
            messages += 1
            for r in fields[1:]:
                rcpts[r.lower()] = fields[0]
    return messages, rcpts


class Record:
    """The sink's record file, read incrementally."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        self.rest = b""
        self.accepted = {}  # rcpt -> times accepted
        self.deferred = {}  # rcpt -> times deferred
        self.bounced = {}  # rcpt -> times refused
        self.dsn = {}  # rcpt -> DSN records naming it (Action: failed)

    def update(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return
        self.offset += len(data)
        data = self.rest + data
        lines = data.split(b"\n")
        self.rest = lines.pop()
        for raw in lines:
            fields = raw.decode("utf-8", "replace").split("\t")
            kind = fields[0]
            if kind == "A" and len(fields) >= 3:
                d, key = self.accepted, fields[2]
            elif kind == "T" and len(fields) >= 2:
                d, key = self.deferred, fields[1]
            elif kind == "P" and len(fields) >= 2:
                d, key = self.bounced, fields[1]
            elif kind == "D" and len(fields) >= 4 and fields[3].strip().lower() == "failed":
                d, key = self.dsn, fields[2]
            else:
                continue
            key = key.strip().lower()
            d[key] = d.get(key, 0) + 1


def read_queue(path):
    """Recipients still queued, from drover queue list --json or postqueue -j."""
    queued = set()
    if path is None:
        return queued
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                o = json.loads(line)
            except ValueError:
                continue
            for r in o.get("recipients", []):
                if isinstance(r, str):
                    queued.add(r.lower())
                elif isinstance(r, dict):
                    # postqueue -j lists undelivered recipients only; a state, if Drover
                    # lists one, tells pending ones apart.
                    if r.get("state", "pending") == "pending":
                        queued.add(str(r.get("address", "")).lower())
    return queued


def missing(rcpts, rec, until):
    out = []
    for r in rcpts:
        if until == "first":
            if r not in rec.accepted and r not in rec.bounced and r not in rec.deferred:
                out.append(r)
        elif r not in rec.accepted and (r not in rec.bounced or r not in rec.dsn):
            out.append(r)
    return out


def cmd_wait(args):
    _, rcpts = read_acks(args.acks)
    rec = Record(args.record)
    deadline = time.monotonic() + args.deadline
    todo = list(rcpts)
    while True:
        rec.update()
        todo = missing(todo, rec, args.until)
        if not todo:
            print(f"{time.time():.3f}")
            return 0
        if time.monotonic() >= deadline:
            print(f"tally: deadline: {len(todo)} of {len(rcpts)} recipients not {args.until}"
                  f" (e.g. {', '.join(sorted(todo)[:3])})", file=sys.stderr)
            return 1
        time.sleep(0.1)


def cmd_verdict(args):
    messages, rcpts = read_acks(args.acks)
    rec = Record(args.record)
    rec.update()
    queued_now = read_queue(args.queue)
    c = dict.fromkeys(("delivered", "bounced", "queued", "lost", "duplicated", "dsn_missing",
                       "deferred_once_or_more"), 0)
    examples = {}
    for r in rcpts:
        a = rec.accepted.get(r, 0)
        if r in rec.deferred:
            c["deferred_once_or_more"] += 1
        if a > 1:
            kind = "duplicated"
        elif a == 1:
            kind = "delivered"
        elif r in rec.bounced:
            kind = "bounced"
            if r not in rec.dsn:
                c["dsn_missing"] += 1
                examples.setdefault("dsn_missing", r)
        elif r in queued_now:
            kind = "queued"
        else:
            kind = "lost"
        c[kind] += 1
        examples.setdefault(kind, r)
    print(f"messages={messages} recipients={len(rcpts)} " +
          " ".join(f"{k}={v}" for k, v in c.items()))
    for k in ("lost", "duplicated", "dsn_missing"):
        if c[k]:
            print(f"tally: {k}: e.g. {examples[k]}", file=sys.stderr)
    return 1 if c["lost"] or c["duplicated"] else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("wait")
    w.add_argument("--acks", required=True)
    w.add_argument("--record", required=True)
    w.add_argument("--until", choices=("first", "final"), required=True)
    w.add_argument("--deadline", type=float, default=600)
    v = sub.add_parser("verdict")
    v.add_argument("--acks", required=True)
    v.add_argument("--record", required=True)
    v.add_argument("--queue")
    args = ap.parse_args()
    return cmd_wait(args) if args.cmd == "wait" else cmd_verdict(args)


if __name__ == "__main__":
    sys.exit(main())
