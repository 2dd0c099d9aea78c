#!/usr/bin/env python3
"""Summarises nfs4d-bench JSON Lines from compare.sh as Markdown tables.

Usage: summarize.py results.jsonl

Values are medians over the rounds. A ratio nfs4d/Ganesha is the median of
the per-round ratios (each from two runs made back to back), which cancels
slow drifts of a shared machine better than a ratio of medians.
"""
import json
import statistics
import sys
from collections import defaultdict

SERVERS = ("nfs4d", "ganesha")
# Label of the optional earlier nfs4d build (compare.sh --before-bin).
BEFORE = "before"

# workload -> (metric key, heading, unit)
PRIMARY = {
    "metadata": ("ops_per_s", "COMPOUNDs/s (5 per file)", ""),
    "readdir": ("items_per_s", "entries/s", ""),
    "smallfile": ("items_per_s", "files/s (4 COMPOUNDs each)", ""),
    "seqread": ("mib_per_s", "MiB/s", ""),
    "seqwrite": ("mib_per_s", "MiB/s", ""),
    "randread": ("ops_per_s", "IOPS (4 KiB)", ""),
    "randwrite": ("ops_per_s", "IOPS (4 KiB)", ""),
    "openhold": ("items_per_s", "OPENs/s", ""),
    "bigdir": ("items_per_s", "files created/s (one directory)", ""),
}
ORDER = list(PRIMARY)

# Bounds used for the RSS target: what "bounded and flat" means here.
MAX_BYTES_PER_OPEN = 4096
MAX_HOLD_DRIFT_KB = 1024


def load(path):
    runs = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                try:
                    runs.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    return runs


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt(v, digits=1):
    if v is None:
        return "–"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def main():
    runs = load(sys.argv[1])
    by = defaultdict(list)  # (workload, label) -> runs
    failed = []
    for r in runs:
        if "failed" in r:
            failed.append(r)
            continue
        by[(r["workload"], r["label"])].append(r)

    def values(w, label, key):
        return [r.get(key) for r in by.get((w, label), [])]

    def per_round(w, key, num="nfs4d", den="ganesha"):
        """Per-round num/den ratios of `key` (default nfs4d/Ganesha)."""
        rounds = defaultdict(dict)
        for label in (num, den):
            for r in by.get((w, label), []):
                rounds[r.get("round")][label] = r.get(key)
        out = []
        for pair in rounds.values():
            a, b = pair.get(num), pair.get(den)
            if a is not None and b:
                out.append(a / b)
        return out

    ceiling = med(values("tcp-ceiling", "loopback", "mib_per_s"))
    ceiling_by_round = {r.get("round"): r.get("mib_per_s") for r in by.get(("tcp-ceiling", "loopback"), [])}

    # The same streams with a file at the receiving (seqwrite) or the
    # sending (seqread) end, on the exports' file system: what plain TCP
    # and the page cache allow with no NFS at all.
    file_key = {"seqwrite": "into_file_mib_per_s", "seqread": "from_file_mib_per_s"}
    file_by_round = {w: {r.get("round"): r.get(k) for r in by.get(("tcp-ceiling", "loopback"), [])}
                     for w, k in file_key.items()}

    def ceiling_fractions(w, label, of=None):
        """Streaming rate over the same round's TCP ceiling, or over its
        file-ended stream with `of="file"` (the ceiling moves with the
        machine's load as much as the servers do)."""
        out = []
        for r in by.get((w, label), []):
            c = (file_by_round[w] if of == "file" else ceiling_by_round).get(r.get("round"))
            if c and r.get("mib_per_s") is not None:
                out.append(r["mib_per_s"] / c)
        return out

    n_rounds = len({r.get("round") for r in runs})
    any_run = next(iter(by.values()), [{}])[0]
    print(f"Rounds: {n_rounds}; {any_run.get('connections', '?')} connections x "
          f"{any_run.get('slots', '?')} slots; medians over rounds, ratio = median of per-round ratios.\n")
    if ceiling:
        print(f"Loopback TCP ceiling (1 MiB writes): **{ceiling:,.0f} MiB/s**\n")
        into = med(values("tcp-ceiling", "loopback", "into_file_mib_per_s"))
        frm = med(values("tcp-ceiling", "loopback", "from_file_mib_per_s"))
        if into and frm:
            copy = med(values("tcp-ceiling", "loopback", "cold_copy_mib_per_s"))
            spliced = med(values("tcp-ceiling", "loopback", "into_file_spliced_mib_per_s"))
            print(f"The same streams into files (seqwrite's ceiling): **{into:,.0f} MiB/s** "
                  f"(received with splice instead of read: {fmt(spliced)} MiB/s); "
                  f"from a file with sendfile (seqread's): **{frm:,.0f} MiB/s**; "
                  f"memory copied, uncached, by all cores: {fmt(copy)} MiB/s\n")

    def spread(ratios):
        return f"{min(ratios):.2f}–{max(ratios):.2f}" if len(ratios) > 1 else "–"

    print("| workload | metric | nfs4d | Ganesha | nfs4d/Ganesha | per-round range "
          "| nfs4d p50 / p99 ms | Ganesha p50 / p99 ms | errors n/G |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for w in ORDER:
        key, heading, _ = PRIMARY[w]
        if not any(by.get((w, s)) for s in SERVERS):
            continue
        n, g = med(values(w, "nfs4d", key)), med(values(w, "ganesha", key))
        ratios = per_round(w, key)
        ratio = med(ratios)
        lat = {s: (med(values(w, s, "p50_ms")), med(values(w, s, "p99_ms"))) for s in SERVERS}
        errs = {s: sum(e or 0 for e in values(w, s, "errors")) for s in SERVERS}
        print(f"| {w} | {heading} | {fmt(n)} | {fmt(g)} | {fmt(ratio, 2)}x | {spread(ratios)} "
              f"| {fmt(lat['nfs4d'][0], 2)} / {fmt(lat['nfs4d'][1], 2)} "
              f"| {fmt(lat['ganesha'][0], 2)} / {fmt(lat['ganesha'][1], 2)} "
              f"| {errs['nfs4d']} / {errs['ganesha']} |")
        if w == "readdir":
            ln, lg = med(values(w, "nfs4d", "listings_per_s")), med(values(w, "ganesha", "listings_per_s"))
            print(f"| readdir | listings/s | {fmt(ln)} | {fmt(lg)} | {fmt(med(per_round(w, 'listings_per_s')), 2)}x | | | | |")
        if w == "metadata":
            fn, fg = med(values(w, "nfs4d", "items_per_s")), med(values(w, "ganesha", "items_per_s"))
            print(f"| metadata | files/s | {fmt(fn)} | {fmt(fg)} | {fmt(med(per_round(w, 'items_per_s')), 2)}x | | | | |")

    if ceiling:
        print("\nStreaming as a fraction of the loopback TCP ceiling, and of the same streams "
              "with the file at one end (median of per-round fractions):\n")
        print("| workload | nfs4d | Ganesha | nfs4d of the file-ended stream | Ganesha of it |")
        print("|---|---:|---:|---:|---:|")
        for w in ("seqread", "seqwrite"):
            f = {s: med(ceiling_fractions(w, s)) for s in SERVERS}
            ff = {s: med(ceiling_fractions(w, s, "file")) for s in SERVERS}
            pct = lambda v: "–" if v is None else f"{100 * v:.0f} %"
            print(f"| {w} | {pct(f['nfs4d'])} | {pct(f['ganesha'])} | {pct(ff['nfs4d'])} | {pct(ff['ganesha'])} |")

    print("\nServer resources over the measured window (each workload on a freshly started server):\n")
    print("| workload | CPU s / 1000 ops nfs4d | Ganesha | peak RSS MiB nfs4d | Ganesha | generator CPU s (n/G) |")
    print("|---|---:|---:|---:|---:|---:|")
    for w in ORDER:
        if not any(by.get((w, s)) for s in SERVERS):
            continue
        cpu = {s: med(values(w, s, "server_cpu_s_per_kop")) for s in SERVERS}
        rss = {s: med(values(w, s, "server_peak_rss_kb")) for s in SERVERS}
        gen = {s: med(values(w, s, "client_cpu_s")) for s in SERVERS}
        mib = lambda kb: None if kb is None else kb / 1024
        print(f"| {w} | {fmt(cpu['nfs4d'], 3)} | {fmt(cpu['ganesha'], 3)} | {fmt(mib(rss['nfs4d']))} "
              f"| {fmt(mib(rss['ganesha']))} | {fmt(gen['nfs4d'], 2)} / {fmt(gen['ganesha'], 2)} |")

    if any(by.get(("openhold", s)) for s in SERVERS):
        print("\nRSS with files held open (`openhold`):\n")
        print("| server | files open | RSS before MiB | RSS held MiB | bytes per open file "
              "| growth while held KiB (all / 2nd half) | RSS after CLOSE MiB |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for s in SERVERS:
            v = lambda k: med(values("openhold", s, k))
            mib = lambda kb: None if kb is None else kb / 1024
            print(f"| {s} | {fmt(v('files_held_open'))} | {fmt(mib(v('rss_before_kb')))} | {fmt(mib(v('rss_held_kb')))} "
                  f"| {fmt(v('bytes_per_open_file'))} | {fmt(v('rss_hold_growth_kb'))} / {fmt(v('rss_hold_drift_kb'))} "
                  f"| {fmt(mib(v('rss_after_close_kb')))} |")

    if any(by.get(("bigdir", s)) for s in SERVERS):
        print("\nOne large directory (`bigdir`): creation, then one full `ls -l` listing per slot:\n")
        print("| server | files | created/s | create p50 / p99 ms | listed entries/s | READDIR p50 / p99 ms "
              "| peak RSS MiB (listing) | RSS growth per million files created MiB |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for s in SERVERS:
            v = lambda k: med(values("bigdir", s, k))
            mib = lambda kb: None if kb is None else kb / 1024
            print(f"| {s} | {fmt(v('items'))} | {fmt(v('items_per_s'))} | {fmt(v('p50_ms'), 2)} / {fmt(v('p99_ms'), 2)} "
                  f"| {fmt(v('list_entries_per_s'))} | {fmt(v('list_p50_ms'), 2)} / {fmt(v('list_p99_ms'), 2)} "
                  f"| {fmt(mib(v('list_server_peak_rss_kb')))} | {fmt(mib(v('rss_growth_kb_per_million')))} |")
        r = med(per_round("bigdir", "list_entries_per_s"))
        print(f"\nListing ratio nfs4d/Ganesha: {fmt(r, 2)}x (median of per-round ratios).")

    if any(r.get("label") == BEFORE for r in runs):
        print(f"\nThe nfs4d build under test against the `{BEFORE}` build (`--before-bin`), "
              "run in the same rounds with the same generator; ratios are medians of per-round ratios:\n")
        print("| workload | metric | before | nfs4d | nfs4d/before | per-round range | before/Ganesha "
              "| CPU s / 1000 ops before / nfs4d | peak RSS MiB before / nfs4d |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for w in ORDER:
            key, heading, _ = PRIMARY[w]
            if not by.get((w, BEFORE)):
                continue
            rb = per_round(w, key, "nfs4d", BEFORE)
            cpu = [med(values(w, s, "server_cpu_s_per_kop")) for s in (BEFORE, "nfs4d")]
            rss = [med(values(w, s, "server_peak_rss_kb")) for s in (BEFORE, "nfs4d")]
            rss = [None if v is None else v / 1024 for v in rss]
            print(f"| {w} | {heading} | {fmt(med(values(w, BEFORE, key)))} | {fmt(med(values(w, 'nfs4d', key)))} "
                  f"| {fmt(med(rb), 2)}x | {spread(rb)} | {fmt(med(per_round(w, key, BEFORE, 'ganesha')), 2)}x "
                  f"| {fmt(cpu[0], 3)} / {fmt(cpu[1], 3)} | {fmt(rss[0])} / {fmt(rss[1])} |")

    print("\nTargets:\n")
    def target(name, ok, detail):
        mark = "–" if ok is None else ("met" if ok else "NOT met")
        print(f"- {name}: **{mark}** ({detail})")
    # The targets of docs/performance.md ("Targets"), each checked on this run.
    cpu = {s: med(values("metadata", s, "server_cpu_s_per_kop")) for s in SERVERS}
    ok = None if None in cpu.values() else cpu["nfs4d"] <= cpu["ganesha"]
    target("metadata CPU per COMPOUND <= Ganesha's", ok,
           f"{fmt(cpu['nfs4d'], 3)} / {fmt(cpu['ganesha'], 3)} s per 1000")
    for w, key, goal in (("readdir", "items_per_s", 2), ("bigdir", "list_entries_per_s", 2),
                         ("openhold", "items_per_s", 2), ("randread", "ops_per_s", 1.5),
                         ("randwrite", "ops_per_s", 1.5)):
        r = med(per_round(w, key))
        if r is not None or w != "bigdir":
            target(f"{w} >= {goal}x Ganesha", None if r is None else r >= goal, f"{fmt(r, 2)}x")
    for w, goal in (("seqread", 0.8), ("seqwrite", 0.6)):
        f = med(ceiling_fractions(w, "nfs4d"))
        ff = med(ceiling_fractions(w, "nfs4d", "file"))
        end = "into files" if w == "seqwrite" else "from a file"
        target(f"{w} >= {100 * goal:.0f} % of the TCP ceiling", None if f is None else f >= goal,
               ("–" if f is None else f"{100 * f:.0f} %")
               + ("" if ff is None else f"; {100 * ff:.0f} % of the same streams {end}"))
        rss = {s: med(values(w, s, "server_peak_rss_kb")) for s in SERVERS}
        ok = None if None in rss.values() else rss["nfs4d"] <= 2 * rss["ganesha"]
        target(f"{w} peak RSS <= 2x Ganesha's", ok,
               "–" if ok is None else f"{rss['nfs4d'] / 1024:.0f} / {rss['ganesha'] / 1024:.0f} MiB")
    bpo = med(values("openhold", "nfs4d", "bytes_per_open_file"))
    drift = med(values("openhold", "nfs4d", "rss_hold_drift_kb"))
    ok = None if bpo is None or drift is None else (bpo <= MAX_BYTES_PER_OPEN and drift <= MAX_HOLD_DRIFT_KB)
    target(f"RSS bounded (<= {MAX_BYTES_PER_OPEN} B per open file) and flat "
           f"(<= {MAX_HOLD_DRIFT_KB} KiB growth over the second half of the hold)",
           ok, f"{fmt(bpo)} B per open file, {fmt(drift)} KiB growth")

    if failed:
        print("\nFailed runs:\n")
        for r in failed:
            print(f"- round {r.get('round')}: {r['workload']} on {r['label']}: {r['failed']}")
    notes = set()
    for rs in by.values():
        for r in rs:
            for m in r.get("messages", []):
                if m.startswith("ops are") or m.startswith("UNSTABLE"):
                    notes.add(f"{r['workload']}: {m}")
    if notes:
        print("\nDefinitions:\n")
        for n in sorted(notes):
            print(f"- {n}")


if __name__ == "__main__":
    main()
