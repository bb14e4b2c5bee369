"""A picture of the fabric as SVG: super-spines (three tiers) above spines above leaves
above hosts, each link coloured
by its utilization (the busier direction), drained links dashed, switches that lost
their controller session greyed out. Pure: topology and link dictionaries in (the
shapes ``fabricctl --json topology`` and ``links`` print), SVG text out."""

from __future__ import annotations

from html import escape
from typing import Any

WIDTH_PER_NODE = 90
TIERS = ("super-spine", "spine", "leaf", "host")
ROW_STEP = 155
LEGEND = ((0.0, "idle"), (0.5, "50%"), (0.8, "80%"), (1.0, "100%"))


def util_colour(u: float) -> str:
    """Green (idle) through yellow to red (full)."""
    u = max(0.0, min(1.0, u))
    if u < 0.5:
        r, g = int(510 * u), 170
    else:
        r, g = 255, int(170 * (1 - u) * 2)
    return f"#{r:02x}{g:02x}30"


def _row(items: list, width: float) -> dict:
    step = width / (len(items) + 1) if items else 0
    return {key: step * (i + 1) for i, key in enumerate(items)}


def render_svg(topo: dict[str, Any], links: list[dict[str, Any]]) -> str:
    switches = topo["switches"]
    role = {s["dpid"]: s["role"] if s["role"] in ("spine", "super-spine") else "leaf"
            for s in switches}
    rows = {kind: sorted(d for d, r in role.items() if r == kind) for kind in TIERS[:3]}
    hosts = sorted(topo["hosts"], key=lambda h: (h["dpid"], h["port"]))
    shown = [k for k in TIERS if k == "host" or rows[k] or k == "spine"]
    row_y = {k: 70 + ROW_STEP * i for i, k in enumerate(shown)}
    height = row_y["host"] + 90
    n = max(*(len(v) for v in rows.values()), len(hosts), 1)
    width = max(600, n * WIDTH_PER_NODE)
    xs = {(kind, d): x for kind in TIERS[:3] for d, x in _row(rows[kind], width).items()}
    xs |= {("host", h["mac"]): x for h, x in zip(hosts, _row(list(range(len(hosts))), width)
                                                 .values(), strict=True)}
    connected = {s["dpid"]: s["connected"] for s in switches}
    drained_sw = {s["dpid"] for s in switches if s.get("drained")}
    util: dict[frozenset, float] = {}
    for lk in links:
        pair = frozenset((lk["src_dpid"], lk["dst_dpid"]))
        util[pair] = max(util.get(pair, 0.0), lk["utilization"])
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height}" '
             f'viewBox="0 0 {width:.0f} {height}" font-family="sans-serif" font-size="12">',
             '<rect width="100%" height="100%" fill="white"/>',
             '<text x="10" y="20" font-size="14" font-weight="bold">aifabric fabric</text>']
    seen: set[frozenset] = set()
    for lk in topo["links"]:
        pair = frozenset((lk["src_dpid"], lk["dst_dpid"], lk["src_port"], lk["dst_port"]))
        if pair in seen:
            continue
        seen.add(pair)
        a, b = lk["src_dpid"], lk["dst_dpid"]
        if a not in role or b not in role:
            continue
        ka, kb = (role[a], a), (role[b], b)
        u = util.get(frozenset((a, b)), 0.0)
        drained = lk.get("drained") or a in drained_sw or b in drained_sw
        dash = ' stroke-dasharray="6,4"' if drained else ""
        colour = "#999999" if drained else util_colour(u)
        title = (f"{a}:{lk['src_port']} - {b}:{lk['dst_port']} "
                 f"{'drained' if drained else f'{u:.0%}'}")
        parts.append(f'<line x1="{xs[ka]:.1f}" y1="{row_y[ka[0]]}" x2="{xs[kb]:.1f}" '
                     f'y2="{row_y[kb[0]]}" stroke="{colour}" stroke-width="3"{dash}>'
                     f'<title>{escape(title)}</title></line>')
    for h in hosts:
        leaf = ("leaf", h["dpid"])
        if leaf in xs:
            parts.append(f'<line x1="{xs[leaf]:.1f}" y1="{row_y["leaf"]}" '
                         f'x2="{xs[("host", h["mac"])]:.1f}" y2="{row_y["host"]}" '
                         'stroke="#bbbbbb" stroke-width="1.5"/>')
    for kind, dpids in rows.items():
        for d in dpids:
            x, y = xs[(kind, d)], row_y[kind]
            fill = "#dde7f5" if connected.get(d) else "#eeeeee"
            stroke = "#555555" if d in drained_sw else ("#2b4c7e" if connected.get(d)
                                                        else "#aaaaaa")
            label = f"{kind} {d}" + (" (drained)" if d in drained_sw else "") + (
                "" if connected.get(d) else " (down)")
            parts.append(f'<rect x="{x - 38:.1f}" y="{y - 16}" width="76" height="32" rx="5" '
                         f'fill="{fill}" stroke="{stroke}" stroke-width="2"/>')
            parts.append(f'<text x="{x:.1f}" y="{y + 4}" text-anchor="middle">'
                         f'{escape(str(d))}</text>')
            parts.append(f'<title>{escape(label)}</title>')
    for h in hosts:
        x, y = xs[("host", h["mac"])], row_y["host"]
        parts.append(f'<circle cx="{x:.1f}" cy="{y}" r="12" fill="#f5efe0" stroke="#8a6d3b"/>')
        parts.append(f'<text x="{x:.1f}" y="{y + 30}" text-anchor="middle" font-size="10">'
                     f'{escape(h["ip"] or h["mac"])}</text>')
    lx, ly = 10, height - 20
    parts.append(f'<text x="{lx}" y="{ly}">link utilization:</text>')
    for i, (u, text) in enumerate(LEGEND):
        x = lx + 110 + i * 70
        parts.append(f'<line x1="{x}" y1="{ly - 4}" x2="{x + 24}" y2="{ly - 4}" '
                     f'stroke="{util_colour(u)}" stroke-width="4"/>')
        parts.append(f'<text x="{x + 28}" y="{ly}">{text}</text>')
    x = lx + 110 + len(LEGEND) * 70
    parts.append(f'<line x1="{x}" y1="{ly - 4}" x2="{x + 24}" y2="{ly - 4}" stroke="#999999" '
                 'stroke-width="3" stroke-dasharray="6,4"/>')
    parts.append(f'<text x="{x + 28}" y="{ly}">drained</text>')
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
