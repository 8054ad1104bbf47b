"""benchmarks/python/report.py: docs/benchmarks.md and its plots from a result JSON (fixed text: report.md).
From a saved run: ``python benchmarks/python/report.py build/bench/X.json [--with OTHER.json ...]``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common import *  # noqa: F403
from goals import goals  # noqa: F401
from plots import plots

BLOCKS = {b.split("\n", 1)[0]: b.split("\n", 1)[1].rstrip("\n")
          for b in (Path(__file__).with_name("report.md").read_text(encoding="utf-8").split("\n@@ ")[1:])}


def block(name: str, **fields: Any) -> list[str]:
    """A block of report.md, filled in, as lines."""
    return BLOCKS[name].format(**fields).split("\n")


def md_table(head: list[str], rows: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "| --- |" + " --- |" * (len(head) - 1)] + [
        "| " + " | ".join(r) + " |" for r in rows]


# Each plot's alt text in docs/benchmarks.md.
IMAGES = {"throughput": "Throughput by payload", "latency": "Round-trip latency"}


def image_md(images: dict[str, str], name: str) -> list[str]:
    """The plot ``name``, if it was drawn."""
    return [f"![{IMAGES[name]}]({images[name]})", ""] if name in images else []


def notes_lines(notes: list[str]) -> list[str]:
    """Numbered footnotes ``[i] note`` under a table, after an empty line."""
    return [f"{'' if i > 1 else chr(10)}[{i}] {n.replace('|', '/')}  " for i, n in enumerate(notes, 1)]


# ---- docs/benchmarks.md: sections -----------------------------------------------------


def other_pythons_md(data: dict[str, Any]) -> list[str]:
    """Every goal on every Python of the run, side by side (run.py --with)."""
    runs = {str((data.get("python") or {}).get("bench", "?")).split()[0]: data, **(data.get("other_pythons") or {})}
    if len(runs) < 2:
        return []
    vers = sorted(runs, key=lambda v: tuple(int(x) if x.isdigit() else 0 for x in v.split(".")))
    by = {v: {g["goal"]: g for g in runs[v].get("goals", [])} for v in vers}
    names = list(dict.fromkeys(g["goal"] for v in vers for g in runs[v].get("goals", [])))
    L = block("pythons", pool=STDLIB_POOL, runs=", ".join(
        f"{v}: {'quick run, ' if runs[v].get('quick') else ''}{runs[v].get('timestamp', '?')}" for v in vers))
    L += [""] + md_table(["goal"] + [f"Python {v}" for v in vers], [[n] + [
        f"**{g['status']}** {g['detail']}".replace("|", "/") if (g := by[v].get(n)) else "-" for v in vers]
        for n in names])
    for path, why in (data.get("other_pythons_missing") or {}).items():
        L += ["", f"Not included: `{path}` ({why})."]
    return L + [""]


def wide_table(data: dict[str, Any], workloads: list[str]) -> list[str]:
    """One row per workload, one column per peer: the figure and its ratio to multiprocessing.Queue."""
    cells, peers, notes = cells_by(data), data["peers_order"], []
    rows = []
    for w in workloads:
        row, base = [w], figure(cells.get((w, BASELINE)))
        for p in peers:
            c = cells.get((w, p))
            if c and c.get("status") == "ok":
                r = (figure(c) or 0) / base if base else None
                row.append(cell_value_text(c) + (f" **{ratio_str(r)}**" if r and p != BASELINE else ""))
            else:
                notes.append(f"{w} / {p}: {status_text(c)}")
                row.append((c or {}).get("status", "not run") + f" [{len(notes)}]")
        rows.append(row)
    return md_table(["workload"] + [label(data, p) for p in peers], rows) + [
        "", "Bold: speed relative to multiprocessing.Queue in this run (> 1 = faster)."] + notes_lines(notes)


def values_md(data: dict[str, Any], res: dict[str, Any]) -> list[str]:
    notes: list[str] = []

    def row(r: dict[str, Any]) -> list[str]:
        if r.get("speedup") is None:
            notes.append(f"{r['payload']}: {first_line(r.get('error') or 'no figure', 200)}")
        codec = ns_text(r["codec_ns"]) if r.get("speedup") is not None else f"error [{len(notes)}]"
        return [r["payload"], str(r.get("what", "")).replace("|", "/"), codec, ns_text(r.get("channel_ns")),
                ns_text(r.get("pickle_ns")), f"{r['speedup']:.1f}x" if r.get("speedup") is not None else "-"]

    rows = [row(r) for r in res["rows"]]
    return block("values", n=res.get("n", 0)) + [""] + md_table(
        ["payload", "what", "codec", "put+get", "pickle", "pickle / codec"], rows) + notes_lines(notes)


def pool_md(data: dict[str, Any], res: dict[str, Any]) -> list[str]:
    pv = pool_variants(res)
    if not pv:
        return []
    names = list(dict.fromkeys(str(q.get("name")) for v in pv for q in v["peers"]))  # in first-seen order

    def cell(q: dict[str, Any] | None) -> str:
        if q is None or not isinstance(q.get("seconds"), (int, float)):
            return str((q or {}).get("error", "-"))[:60].replace("|", "/")
        sv, runs = q.get("speedup_vs_serial"), q.get("runs") or []
        if isinstance(sv, (int, float)):
            return f"{q['seconds']:.3g} s ({sv:.3g}x serial)"
        first = f" (first run {runs[0]:.3g} s)" if len(runs) > 1 and isinstance(runs[0], (int, float)) else ""
        return f"{q['seconds']:.3g} s{first}"  # start-up: the first use in the process

    L = block("pool") + [""] + md_table(["workload"] + names, [
        [f"{v['name']} ({v.get('tasks', '?')} tasks)"] + [cell(next((q for q in v["peers"] if q.get("name") == nm),
                                                                    None)) for nm in names] for v in pv])
    others = [n for n in names if n != "xchannels.Pool"]
    rows = []
    for v in pv:
        secs = {q.get("name"): q.get("seconds") for q in v["peers"]}
        xs = secs.get("xchannels.Pool")
        if isinstance(xs, (int, float)) and xs > 0:
            rows.append([v["name"]] + [ratio_str(t / xs) if isinstance(t := secs.get(nm), (int, float)) and t > 0
                                       else "-" for nm in others])
    L += [""] + block("pool_ratios") + [""] + md_table(["workload"] + others, rows) + [""]
    L += [f"- {v['name']}: {v['note']}" for v in pv if v.get("note")]
    reuse = res.get("reusable")
    if isinstance(reuse, dict) and isinstance(reuse.get("later_median_ms"), (int, float)):
        L += [""] + block("reusable", tasks=reuse.get("tasks", 4), figures=reusable_text(reuse))
    extra = {k: v for k, v in res.items() if k != "variants" and not isinstance(v, (dict, list))}
    return L + (["", "Settings: " + ", ".join(f"{k} = {v}" for k, v in extra.items()) + "."] if extra else [])


def asgi_md(data: dict[str, Any], res: dict[str, Any]) -> list[str]:
    if not isinstance(res, dict) or not res.get("rows"):
        return []
    rows = []
    for r in res["rows"]:
        cmd = f"`{r['command']}`".replace("|", "/") if r.get("command") else "-"
        if not asgi_ok(r):
            why = first_line(str(r.get("error") or "no figure"), 160).replace("|", "/")
            rows.append([str(r.get("name")), f"{r.get('status', 'error')}: {why}", "-", "-", "-", "-", cmd])
        else:
            every = ", ".join(f"{v:,.0f}" for v in r.get("rounds") or [] if isinstance(v, (int, float))) or "-"
            rows.append([r["name"], f"{r['rps']:,.0f}", every, f"{r['p99_ms']:.1f} ms", f"{r['rss_mib']:.1f} MiB",
                         str(r.get("procs", "?")), cmd])
    L = block("asgi", **{"warmup_seconds": 1, "rounds": 1, **res}) + [""] + md_table(
        ["server", "requests/s", "every round", "p99", "RSS (process tree)", "processes", "command"], rows)
    x, m = res.get("xchannels_over_hypercorn2_rps"), res.get("rss_ratio")
    if isinstance(x, (int, float)) and isinstance(m, (int, float)):
        L += [""] + block("asgi_ratio", x=x, m=m, ours=ASGI_XCHANNELS, theirs=ASGI_REFERENCE)
    return L


def dask_md(data: dict[str, Any], res: dict[str, Any]) -> list[str]:
    if not res.get("rows"):
        return []
    r0 = res["rows"][0]
    return block("dask", tasks=r0.get("tasks", "?"), chunk=r0.get("chunk", 0), rounds=r0.get("rounds", "?")) + [
        ""] + md_table(["cluster", "numbers/s", "RSS (MiB)", "processes"], [
            [r["label"], f"error: {first_line(r.get('error') or '')}", "", ""] if r.get("status") != "ok" else
            [r["label"], f"{r['numbers_per_s'] / 1e3:,.0f}k", f"{r['rss_mib']:.0f}", str(r["procs"])]
            for r in res["rows"]])


def large_md(data: dict[str, Any], res: dict[str, Any]) -> list[str]:
    rows = [[r["workload"], r["peer"], us(r["seconds"] * 1e6) if r.get("seconds")
             else f"error: {first_line(r.get('error') or '', 120)}"] for r in res.get("rows") or []]
    return block("large", trips=res.get("trips", "?"), short_trips=res.get("short_trips", "?")) + [""] + md_table(["value", "how", "round trip"], rows)


def cpp_md(data: dict[str, Any], cpp: dict[str, Any]) -> list[str]:
    failed = ["Failed or timed out: " + "; ".join(f"{k} ({v})" for k, v in cpp["failed"].items()) + ".", ""] \
        if cpp.get("failed") else []
    return block("cpp") + [""] + failed + md_table(
        ["workload", "flavour", "figure", "vs raw moodycamel", "vs blocking moodycamel"],
        [[r["workload"], r["flavor"], r["figure"], ratio_str(r["vs_raw"]), ratio_str(r["vs_blocking"])]
         for r in cpp_rows(cpp)])


# The page's sections after the cells' tables: name -> (title, a maker of its lines from the section's
# figures, [] if there are none). A section missing from the JSON is left out if it came later than the
# oldest saved runs (values, asgi), else said to be not measured.
SECTIONS: dict[str, tuple[str, Any]] = {
    "values": ("## Values: encode + decode against pickle", values_md),
    "pool": ("## Pool", pool_md),
    "asgi": ("## ASGI servers under load", asgi_md),
    "dask": ("## Dask: one worker process with interpreters against worker processes", dask_md),
    "large": ("## Large values between processes", large_md),
    "cpp": ("## C++ micro-benchmarks: Channel against raw moodycamel", cpp_md),
}


def section_md(data: dict[str, Any], name: str) -> list[str]:
    """A section of the page: its title, then its figures, or why it has none."""
    title, make = SECTIONS[name]
    sec = data.get(name)
    if sec is None and name in ("values", "asgi", "large"):
        return []
    sec = sec or {}
    res = sec if name == "cpp" else sec.get("result") or {}
    body = make(data, res) if sec.get("status") == "ok" else []
    if not body:
        return [title, "", f"Not measured in this run: {sec.get('note') or res.get('note') or 'no figures'}.", ""]
    return [title, ""] + body + [""]


def docs_markdown(data: dict[str, Any], json_rel: str, images: dict[str, str]) -> str:
    m, wls, cells = data["machine"], data["workloads_order"], cells_by(data)
    L = block("header", json_rel=json_rel, date=data["date"], commit=data["commit"], cpus=m.get("cpu_count", "?"),
              python=data["python"].get("bench", "?").split()[0], seconds=data.get("run_seconds", 0),
              rounds=data.get("rounds", 1),
              quick=" **This is a `--quick` run: short cells, rough figures.**" if data.get("quick") else "")
    L += [""] + [f"- **{g['status']}** {g['goal']}: {g['detail']}" for g in data.get("goals", [])] + [""]
    L += other_pythons_md(data) + ["## Peers", ""]
    L += md_table(["peer", "what", "actors run in"], [[p, label(data, p), data["peer_info"][p]["where"]]
                                                       for p in data["peers_order"]])
    L += [""] + block("method", target=data.get("target_seconds", 0)) + [""] + block("reading")
    streams = [w for w in wls if w.startswith("stream-")]
    how = [f"{w} / {p}: {c['how']}" for w in streams for p in data["peers_order"]
           if (c := cells.get((w, p))) and c.get("how")]
    L += ["", "## Streams: one producer, one consumer", ""] + image_md(images, "throughput")
    L += wide_table(data, streams) + [""] + (["How: " + "; ".join(how) + ".", ""] if how else [])
    L += ["## Round-trip latency", ""] + image_md(images, "latency") + wide_table(data, ["pingpong"]) + [""]
    L += ["## Patterns: several producers or consumers", ""]
    L += wide_table(data, [w for w in PATTERNS if w in wls]) + [""]
    return "\n".join(L + [line for name in SECTIONS for line in section_md(data, name)])


def add_other_pythons(data: dict[str, Any], paths: list[str]) -> None:
    """Each run on another Python (run.py --out) whole under ``other_pythons``, by version."""
    for path in paths:
        try:
            other = json.loads(Path(path).read_text())
            data.setdefault("other_pythons", {})[other["python"]["bench"].split()[0]] = other
        except (OSError, ValueError, KeyError, AttributeError) as e:
            data.setdefault("other_pythons_missing", {})[path] = f"{type(e).__name__}: {e}"


def write_docs(data: dict[str, Any], json_path: Path, made: list[Path]) -> Path:
    """docs/benchmarks.md, and the run's JSON as its raw data, benchmarks/results/latest.json."""
    if json_path.resolve() != LATEST.resolve():
        LATEST.parent.mkdir(parents=True, exist_ok=True)
        LATEST.write_text(json.dumps(data, indent=1) + "\n")
    images = {p.stem.removeprefix("bench-"): f"img/{p.name}" for p in made}
    out = DOCS / "benchmarks.md"
    out.write_text(docs_markdown(data, str(LATEST.relative_to(ROOT)), images), encoding="utf-8")
    return out


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="plots and docs/benchmarks.md from a saved run")
    ap.add_argument("json", help="a run's JSON (build/bench/*.json or benchmarks/results/latest.json)")
    ap.add_argument("--with", dest="with_results", action="append", default=[], metavar="FILE",
                    help="a run on another Python (run.py --out FILE) to include; repeatable")
    args = ap.parse_args()
    path = Path(args.json)
    data = json.loads(path.read_text())
    add_other_pythons(data, args.with_results)
    made = plots(data)
    print("plots:", ", ".join(str(p.relative_to(ROOT)) for p in made))
    print("docs:", write_docs(data, path, made).relative_to(ROOT))


if __name__ == "__main__":
    main()
