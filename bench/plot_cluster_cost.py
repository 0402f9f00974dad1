#!/usr/bin/env python3
"""The cluster's cost curve as an SVG chart (BENCHMARKS.md, "Cluster").

Usage: bench/plot_cluster_cost.py <bench-results.json> <out.svg> [<before.json>]

Reads the `cluster-append` figures of a bench run made with
`--only cluster-append --append-instances 1,2,3,6` and draws two panels
against the number of instances: events appended per second, and CPU per
event (Redis; all bridge instances summed; one instance, the mean of the
`instance x` figures). A third argument, a run of an older bridge with the
same options, is drawn dashed beside it. Standard library only.
"""

import json
import re
import sys


def load(path):
    """{instances: {figure: value}} of a bench run's cluster-append figures."""
    rows = {}
    for f in json.load(open(path))["figures"]:
        m = re.match(r"cluster append, (\d+) instances?: (.+)$", f["name"])
        if m:
            rows.setdefault(int(m.group(1)), {})[m.group(2)] = f["value"]
    return rows


def series(rows, ks):
    """(events/s, Redis µs, bridges µs, one instance µs) over ks."""
    def one(k):
        each = [v for name, v in rows[k].items() if re.match(r"instance [a-z] CPU per event$", name)]
        return sum(each) / len(each) if each else rows[k]["bridges' CPU per event"] / k
    return ([rows[k]["events/s"] for k in ks], [rows[k]["Redis CPU per event"] for k in ks],
            [rows[k]["bridges' CPU per event"] for k in ks], [one(k) for k in ks])


rows = load(sys.argv[1])
ks = sorted(rows)
if len(ks) < 2:
    sys.exit("need cluster-append figures for at least two instance counts")
rate, redis, bridges, each = series(rows, ks)
before = None
if len(sys.argv) > 3:
    old = load(sys.argv[3])
    if sorted(old) != ks:
        sys.exit(f"the older run has instance counts {sorted(old)}, not {ks}")
    before = series(old, ks)

W, H, PAD = 370, 240, 60


def panel(x0, title, series, unit, top):
    """One panel at x0: lines of (label, colour, values) over ks."""
    out = [f'<g transform="translate({x0},0)">',
           f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="13">{title}</text>']
    kmax = max(ks)
    sx = lambda k: PAD + (W - PAD - 16) * (k - 1) / (kmax - 1)
    sy = lambda v: H - PAD + 8 - (H - PAD - 24) * v / top
    out.append(f'<line x1="{PAD}" y1="{sy(0)}" x2="{W - 16}" y2="{sy(0)}" stroke="#444"/>')
    out.append(f'<line x1="{PAD}" y1="{sy(0)}" x2="{PAD}" y2="{sy(top)}" stroke="#444"/>')
    for i in range(5):
        v = top * i / 4
        out.append(f'<text x="{PAD - 4}" y="{sy(v) + 4}" text-anchor="end" font-size="10">{v:,.0f}</text>')
        out.append(f'<line x1="{PAD}" y1="{sy(v)}" x2="{W - 16}" y2="{sy(v)}" stroke="#ddd"/>')
    for k in ks:
        out.append(f'<text x="{sx(k)}" y="{sy(0) + 14}" text-anchor="middle" font-size="10">{k}</text>')
    out.append(f'<text x="{W / 2}" y="{H - 6}" text-anchor="middle" font-size="11">instances on one Redis</text>')
    out.append(f'<text x="12" y="{H / 2}" font-size="11" transform="rotate(-90 12 {H / 2})" text-anchor="middle">{unit}</text>')
    for n, (label, colour, values, dashed) in enumerate(series):
        pts = " ".join(f"{sx(k):.1f},{sy(v):.1f}" for k, v in zip(ks, values))
        dash = ' stroke-dasharray="5,4"' if dashed else ""
        out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
        for k, v in zip(ks, values):
            out.append(f'<circle cx="{sx(k):.1f}" cy="{sy(v):.1f}" r="3" fill="{colour}"/>')
        out.append(f'<text x="{W - 20}" y="{40 + 14 * n}" text-anchor="end" font-size="11" fill="{colour}">{label}</text>')
    out.append("</g>")
    return "\n".join(out)


def ceil(v, step):
    return step * (int(v / step) + 1)


rates = [("events/s", "#1f77b4", rate, False)]
cpu = [("bridges (all instances)", "#d62728", bridges, False), ("one instance (mean)", "#9467bd", each, False),
       ("Redis", "#2ca02c", redis, False)]
if before:
    rates.append(("events/s, before", "#1f77b4", before[0], True))
    cpu += [("bridges, before", "#d62728", before[2], True), ("one instance, before", "#9467bd", before[3], True)]
top_rate = max(rate + (before[0] if before else []))
top_cpu = max(bridges + (before[2] if before else []))
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{H}" font-family="sans-serif">',
       '<rect width="100%" height="100%" fill="white"/>',
       panel(0, "appended events per second", rates, "events/s", ceil(top_rate, 10000)),
       panel(W, "CPU per event", cpu, "µs per event", ceil(top_cpu, 10)),
       "</svg>"]
open(sys.argv[2], "w").write("\n".join(svg) + "\n")
print(f"{sys.argv[2]}: instances {ks}, events/s {[round(r) for r in rate]}")
