#!/usr/bin/env python3
"""Compare pynfs testserver.py results against an expectation file.

Usage:
    compare.py --suite NAME --json RESULTS.json [--log TESTSERVER.out]
               [--expect EXPECT.txt] [--summary-only]
    compare.py --print-excludes EXPECT.txt

Inputs
  RESULTS.json   written by `testserver.py --json=FILE`.  It lists every test
                 pynfs knows about.  Tests that failed carry a "failure"
                 object, tests that were not run carry "skipped": 1.  It does
                 not tell a test skipped by pynfs (failed dependency) from a
                 test that was not selected at all, nor PASS from WARNING.
  TESTSERVER.out the stdout of the same run, made with --showomit.  Each run
                 test prints "CODE  module.name   : RESULT"; tests that were
                 not selected print nothing.  With it the classification
                 below is exact; without it, JSON-skipped tests count as
                 not run and warnings count as passes.

Per-test status
  pass    PASS
  warn    WARNING or UNSUPPORTED (pynfs counts both as "Warned")
  fail    FAILURE
  skip    OMIT printed by pynfs: selected, but a dependency failed or a
          dependency check said the feature is missing
  notrun  not selected (not in the flags/codes asked for, or excluded)

Expectation file: one entry per line, "#" starts a comment:
    CODE  fail|skip|exclude  reason (required, e.g. "RFC 7530 16.16.5" or
                             "[deleg]")
  fail     the test must come out as fail
  skip     the test must come out as skip
  exclude  run.sh passes "noCODE" to testserver.py so the test is not run
           at all (use for tests that hang or crash the server); it must
           come out as notrun or skip
Every test that is not listed must come out as pass or warn.

A listed test that was not selected in this run is reported but does not
fail the comparison (it happens when only part of the suite was asked for).

Exit status: 0 every run test matched, 1 mismatch, 2 bad input.
Standard library only.
"""

import argparse
import json
import re
import sys

STATUSES = ("fail", "skip", "exclude")

# "%-65s : %s" % ("%-8s %s" % (code, fullname), outcome) -- see pynfs testmod.py
RESULT_LINE = re.compile(
    r"^(?P<code>\S+)\s+(?P<name>\S+)\s+: "
    r"(?P<outcome>PASS|WARNING|UNSUPPORTED|FAILURE|OMIT|NOT RUN|RUNNING|"
    r"WAITING TO RUN)\s*$")
LOG_OUTCOME = {
    "PASS": "pass",
    "WARNING": "warn",
    "UNSUPPORTED": "warn",
    "FAILURE": "fail",
    "OMIT": "skip",
    # Only seen if a run was interrupted; treat as a failure to be loud.
    "NOT RUN": "fail",
    "RUNNING": "fail",
    "WAITING TO RUN": "skip",
}


class InputError(Exception):
    pass


def parse_expect(path):
    """Return {code: (status, reason, lineno)}."""
    entries = {}
    try:
        fd = open(path, encoding="utf-8")
    except OSError as e:
        raise InputError("cannot read expectation file: %s" % e)
    with fd:
        for lineno, raw in enumerate(fd, 1):
            line = raw.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split(None, 2)
            where = "%s:%d" % (path, lineno)
            if len(parts) < 3 or not parts[2].strip():
                raise InputError("%s: need 'CODE fail|skip|exclude reason', "
                                 "got %r" % (where, raw.rstrip("\n")))
            code, status, reason = parts[0], parts[1].lower(), parts[2].strip()
            if status not in STATUSES:
                raise InputError("%s: status must be one of %s, got %r"
                                 % (where, "|".join(STATUSES), parts[1]))
            if code in entries:
                raise InputError("%s: %s already listed on line %d"
                                 % (where, code, entries[code][2]))
            entries[code] = (status, reason, lineno)
    return entries


TOTALS_LINE = re.compile(r"^Of those: (\d+) Skipped, (\d+) Failed, "
                         r"(\d+) Warned, (\d+) Passed")


def parse_log(path):
    """Return ({code: status}, totals) from testserver stdout.

    totals is pynfs's own (skip, fail, warn, pass) count or None."""
    seen = {}
    totals = None
    try:
        fd = open(path, encoding="utf-8", errors="replace")
    except OSError as e:
        raise InputError("cannot read testserver output: %s" % e)
    with fd:
        for line in fd:
            m = RESULT_LINE.match(line.rstrip("\n"))
            if m:
                seen[m.group("code")] = LOG_OUTCOME[m.group("outcome")]
            m = TOTALS_LINE.match(line)
            if m:
                totals = tuple(int(x) for x in m.groups())
    return seen, totals


def load_results(json_path, log_path):
    """Return ({code: status}, {code: failure message}, [notes])."""
    try:
        with open(json_path, encoding="utf-8") as fd:
            data = json.load(fd)
    except (OSError, ValueError) as e:
        raise InputError("cannot read results %s: %s" % (json_path, e))
    cases = data.get("testcase")
    if not isinstance(cases, list):
        raise InputError("%s: no 'testcase' list; not a pynfs --json file"
                         % json_path)
    logged, totals = parse_log(log_path) if log_path else (None, None)
    notes = []
    if log_path and totals is None:
        notes.append("no 'Of those: ...' line in %s: did the run finish?"
                     % log_path)
    status, messages = {}, {}
    for case in cases:
        code = case["code"]
        if "failure" in case:
            st = "fail"
            msg = case["failure"].get("message") or ""
            messages[code] = " ".join(str(msg).split())
        elif case.get("skipped"):
            st = "notrun"
            if logged is not None and logged.get(code) == "skip":
                st = "skip"
        else:
            st = "pass"
            if logged is not None and logged.get(code) == "warn":
                st = "warn"
        if logged is not None and code in logged and logged[code] != st:
            # The JSON is authoritative; report any disagreement.
            notes.append("%s: JSON says %s, testserver output says %s"
                         % (code, st, logged[code]))
        status[code] = st
    if totals is not None:
        c = counts(status)
        mine = (c["skip"], c["fail"], c["warn"], c["pass"])
        if mine != totals:
            notes.append("pynfs counted %d skipped, %d failed, %d warned, "
                         "%d passed; the JSON says %d, %d, %d, %d"
                         % (totals + mine))
    return status, messages, notes


def counts(status):
    c = {"pass": 0, "warn": 0, "fail": 0, "skip": 0, "notrun": 0}
    for st in status.values():
        c[st] += 1
    return c


def compare(status, messages, expect):
    """Return (mismatches, notes); mismatches is a list of (kind, code, text)."""
    mismatches, notes, unselected = [], [], []
    for code in sorted(expect):
        if code not in status:
            mismatches.append(("unknown-code", code,
                               "listed on line %d but pynfs has no such test"
                               % expect[code][2]))
    for code in sorted(status, key=sort_key):
        st = status[code]
        exp = expect.get(code)
        if exp is None:
            if st in ("pass", "warn", "notrun"):
                continue
            if st == "fail":
                mismatches.append(("unexpected-fail", code,
                                   messages.get(code, "")))
            else:
                mismatches.append(("unexpected-skip", code,
                                   "skipped (a dependency failed or a "
                                   "feature check said unsupported)"))
            continue
        want, reason, _ = exp
        if st == "notrun":
            if want != "exclude":
                unselected.append(code)
            continue
        if want == "fail":
            if st == "fail":
                continue
            kind = "unexpected-pass" if st in ("pass", "warn") else \
                "unexpected-skip"
            mismatches.append((kind, code, "expected fail (%s), got %s"
                               % (reason, st)))
        elif want == "skip":
            if st == "skip":
                continue
            kind = {"pass": "unexpected-pass", "warn": "unexpected-pass",
                    "fail": "unexpected-fail"}[st]
            text = "expected skip (%s), got %s" % (reason, st)
            if st == "fail" and messages.get(code):
                text += ": " + messages[code]
            mismatches.append((kind, code, text))
        elif want == "exclude":
            if st == "skip":
                continue
            mismatches.append(("excluded-but-ran", code,
                               "listed as exclude (%s) but ran: %s"
                               % (reason, st)))
    if unselected:
        notes.append("%d listed test(s) not selected in this run: %s"
                     % (len(unselected), " ".join(unselected)))
    return mismatches, notes


_SORT = re.compile(r"(\D*)(\d*)(.*)")


def sort_key(code):
    m = _SORT.match(code)
    return (m.group(1), int(m.group(2) or 0), m.group(3))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--suite", default="pynfs", help="label for the output")
    ap.add_argument("--json", help="testserver.py --json output")
    ap.add_argument("--log", help="testserver.py stdout (made with --showomit)")
    ap.add_argument("--expect", help="expectation file (default: none, "
                    "i.e. every run test must pass)")
    ap.add_argument("--summary-only", action="store_true",
                    help="print counts only, do not compare")
    ap.add_argument("--print-excludes", metavar="EXPECT",
                    help="print the codes listed as 'exclude' and exit")
    args = ap.parse_args(argv)

    try:
        if args.print_excludes:
            for code, (st, _, _) in sorted(parse_expect(args.print_excludes)
                                           .items()):
                if st == "exclude":
                    print(code)
            return 0
        if not args.json:
            ap.error("--json is required")
        status, messages, notes = load_results(args.json, args.log)
        expect = parse_expect(args.expect) if args.expect else {}
    except InputError as e:
        print("compare.py: %s" % e, file=sys.stderr)
        return 2

    c = counts(status)
    run = c["pass"] + c["warn"] + c["fail"]
    print("[%s] %d of %d tests selected, %d run: passed %d, failed %d, "
          "warn %d; skipped %d" % (args.suite, run + c["skip"], len(status),
                                   run, c["pass"], c["fail"], c["warn"],
                                   c["skip"]))
    if args.log is None:
        print("[%s] (no testserver output given: skipped tests are counted "
              "as not selected, warnings as passes)" % args.suite)
    failed = sorted((k for k, v in status.items() if v == "fail"),
                    key=sort_key)
    if failed:
        print("[%s] failing: %s" % (args.suite, " ".join(failed)))
    for n in notes:
        print("[%s] note: %s" % (args.suite, n))
    if args.summary_only:
        return 0

    mismatches, cnotes = compare(status, messages, expect)
    for n in cnotes:
        print("[%s] note: %s" % (args.suite, n))
    if not mismatches:
        print("[%s] OK: all results match %s" %
              (args.suite, args.expect or "(no expectation file)"))
        return 0
    print("[%s] MISMATCH: %d result(s) differ from %s:" %
          (args.suite, len(mismatches), args.expect or "expectations"))
    for kind, code, text in mismatches:
        line = "  %-16s %-12s %s" % (kind, code, text)
        print(line if len(line) <= 200 else line[:197] + "...")
    by_kind = {}
    for kind, code, _ in mismatches:
        by_kind.setdefault(kind, []).append(code)
    for kind in sorted(by_kind):
        print("[%s] %s: %s" % (args.suite, kind, " ".join(by_kind[kind])))
    return 1


if __name__ == "__main__":
    sys.exit(main())
