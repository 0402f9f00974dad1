#!/usr/bin/env python3
"""The cluster's cost curve as an SVG chart (BENCHMARKS.md, "Cluster").

Usage: bench/plot_cluster_cost.py <bench-results.json> <out.svg>

Reads the `cluster-append` figures of a bench run made with
`--only cluster-append --append-instances 1,2,3,6` and draws two panels
against the number of instances: events appended per second, and CPU per
event (Redis; all bridge instances summed). Standard library only.
"""

import json
import re
import sys

results = json.load(open(sys.argv[1]))
rows = {}
for f in results["figures"]:
    m = re.match(r"cluster append, (\d+) instances?: (.+)$", f["name"])
    if m:
        rows.setdefault(int(m.group(1)), {})[m.group(2)] = f["value"]
ks = sorted(rows)
if len(ks) < 2:
    sys.exit("need cluster-append figures for at least two instance counts")
rate = [rows[k]["events/s"] for k in ks]
redis = [rows[k]["Redis CPU per event"] for k in ks]
bridges = [rows[k]["bridges' CPU per event"] for k in ks]

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
    for n, (label, colour, values) in enumerate(series):
        pts = " ".join(f"{sx(k):.1f},{sy(v):.1f}" for k, v in zip(ks, values))
        out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for k, v in zip(ks, values):
            out.append(f'<circle cx="{sx(k):.1f}" cy="{sy(v):.1f}" r="3" fill="{colour}"/>')
        out.append(f'<text x="{W - 20}" y="{40 + 14 * n}" text-anchor="end" font-size="11" fill="{colour}">{label}</text>')
    out.append("</g>")
    return "\n".join(out)


def ceil(v, step):
    return step * (int(v / step) + 1)


svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * W}" height="{H}" font-family="sans-serif">',
       '<rect width="100%" height="100%" fill="white"/>',
       panel(0, "appended events per second", [("events/s", "#1f77b4", rate)], "events/s", ceil(max(rate), 10000)),
       panel(W, "CPU per event", [("bridges (all instances)", "#d62728", bridges), ("Redis", "#2ca02c", redis)],
             "µs per event", ceil(max(bridges), 10)),
       "</svg>"]
open(sys.argv[2], "w").write("\n".join(svg) + "\n")
print(f"{sys.argv[2]}: instances {ks}, events/s {[round(r) for r in rate]}")
