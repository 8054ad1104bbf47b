"""benchmarks/python/report.py: stdout tables and docs/benchmarks.md from a result JSON (fixed text: report.md).
From a saved run: ``python benchmarks/python/report.py build/bench/X.json [--with OTHER.json ...]``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common import *  # noqa: F403
from goals import goal_lines, goals  # noqa: F401
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
IMAGES = {"throughput": "Throughput by payload", "latency": "Ping-pong latency", "patterns": "Patterns",
          "pool_speedup": "Pool speed-up"}


def image_md(images: dict[str, str], name: str) -> list[str]:
    """The plot ``name``, if it was drawn."""
    return [f"![{IMAGES[name]}]({images[name]})", ""] if name in images else []


def notes_lines(notes: list[str]) -> list[str]:
    """Numbered footnotes ``[i] note`` under a table, after an empty line."""
    return [f"{'' if i > 1 else chr(10)}[{i}] {n.replace('|', '/')}  " for i, n in enumerate(notes, 1)]


# ---- stdout ------------------------------------------------------------------------


def table_lines(data: dict[str, Any]) -> list[str]:
    cells = cells_by(data)
    out = [f"{'workload':<26} {'peer':<17} {'figure':<34} {'vs mp.Queue':>11}  note", "-" * 100]
    for w in data["workloads_order"]:
        for p in data["peers_order"]:
            c = cells.get((w, p))
            if c is not None:
                ok = c.get("status") == "ok"
                fig, note = (cell_value_text(c), c.get("how", "")) if ok else (c.get("status", "?"), status_text(c))
                out.append(f"{w:<26} {p:<17} {fig:<34} {ratio_str(ratio(data, w, p)):>11}  {note}")
        out.append("")
    return out + ["vs mp.Queue: speed relative to multiprocessing.Queue measured in this run",
                  "(items/s ratio; for pingpong, its median round trip / this one). > 1 = faster."]


def memcpy_table_lines(data: dict[str, Any]) -> list[str]:
    """The limit of stream-bytes-1MiB and each peer's distance from it: the page's table as text."""
    md = memcpy_md(data)
    return [f"{MEMCPY_WORKLOAD} against one copy at memory bandwidth "
            f"({data['memcpy']['result']['memmove_gbps']:.2f} GB/s):"] + text_tables(md) if memcpy_rows(data) else []


def text_tables(md: list[str]) -> list[str]:
    """The tables of markdown lines as aligned text, each with the line after it if that is a sentence."""
    out, rows = [], []
    for i, line in enumerate(md + [""]):
        if line.startswith("| --- "):
            continue
        if line.startswith("| "):
            rows.append([c.replace("**", "").replace("`", "") for c in line[2:-2].split(" | ")])
        elif rows:
            widths = [max(len(r[k]) for r in rows if k < len(r)) for k in range(len(rows[0]))]
            out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
            after = [ln for ln in md[i:i + 3] if ln.strip()][:1]
            out += [a.replace("`", "") for a in after if not a.startswith(("|", "#", "!"))] + [""]
            rows = []
    return out


def section_lines(name: str, res: Any) -> list[str]:
    """A section's figures (``data[name]["result"]``, or the whole of ``data["cpp"]``) as stdout lines: the
    tables of its part of docs/benchmarks.md."""
    md = section_md({name: res if name == "cpp" else {"status": "ok", "result": res}}, name)
    return text_tables(md) or [ln for ln in md if ln.startswith("Not measured")]


def asgi_row_text(r: dict[str, Any]) -> str:
    if r.get("status") != "ok":
        return f"{r.get('status', 'error')}: {r.get('error', '?')}"
    return (f"{r['rps']:8.0f} req/s  p99 {r['p99_ms']:7.1f} ms  RSS {r['rss_mib']:6.1f} MiB ({procs_text(r)})"
            + (f"  ({r['note']})" if r.get("note") else ""))


def dask_row_text(r: dict[str, Any]) -> str:
    if r.get("status") != "ok":
        return f"{r['label']:<46} error: {r.get('error', '')[-200:]}"
    return (f"{r['label']:<46} {r['numbers_per_s'] / 1e3:8.0f}k numbers/s  RSS {r['rss_mib']:6.1f} MiB "
            f"({r['procs']} processes)  best of {r['rounds']}")


def other_pythons_lines(data: dict[str, Any]) -> list[str]:
    """The goals of the runs on other Pythons (run.py --with), for stdout."""
    L = []
    for v, other in sorted((data.get("other_pythons") or {}).items()):
        L += ["", f"Python {v} (run of {other.get('timestamp', '?')}{', quick' if other.get('quick') else ''}):"]
        L += [f"  {line}" for line in goal_lines(other)]
    for path, why in (data.get("other_pythons_missing") or {}).items():
        L += ["", f"not included: {path}: {why}"]
    return L


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


def reading_lines(data: dict[str, Any]) -> list[str]:
    cells = cells_by(data)
    # ProcessChannel is xchannels too: it is read against the process peers, not counted as a peer of Channel.
    peers = [p for p in data["peers_order"] if p not in ("xchannels", PROCESS_PEER)]
    wins, close, behind, procs, qt_ahead = [], [], [], [], []
    for w in data["workloads_order"]:
        x = figure(cells.get((w, "xchannels")))
        others = [(v, p) for p in peers if (v := figure(cells.get((w, p)))) is not None]
        if x is not None and others:
            # Across interpreters/processes only: queue.Queue stays in one interpreter.
            best, bp = max([(v, p) for v, p in others if p != "queue-thread"] or others)
            r, lb = x / best, label(data, bp)
            if r >= 1.25:
                wins.append(f"{w} ({r:.3g}x the best cross-interpreter/process peer, {lb})")
            elif r >= 0.8:
                close.append(f"{w} ({lb} at {1 / r:.2g}x of xchannels)")
            else:
                behind.append(f"{w} ({lb} is {1 / r:.3g}x faster)")
        xp = figure(cells.get((w, PROCESS_PEER)))
        pothers = [(v, p) for p in PROCESS_REFS if (v := figure(cells.get((w, p)))) is not None]
        if PROCESS_PEER in data["peers_order"] and xp is not None and pothers:
            best, bp = max(pothers)
            procs.append(f"{w} {ratio_str(xp / best)} {label(data, bp)}")
        q = figure(cells.get((w, "queue-thread")))
        if x and q and q > x:
            qt_ahead.append(f"{w} ({q / x:.3g}x)")
    out = [head + "; ".join(items) + "." for head, items in (
        ("- **xchannels leads** in: ", wins), ("- **A peer is close** (within 25 %) in: ", close),
        ("- **xchannels is slower** in: ", behind)) if items]
    if procs:
        out += block("reading_procs", peer=label(data, PROCESS_PEER), items="; ".join(procs))
    if qt_ahead:
        out += block("reading_threads", items="; ".join(qt_ahead))
    if lim := [r for r in memcpy_rows(data) if r["of_limit"] is not None and r["copies"]]:
        out += block("reading_memcpy", workload=MEMCPY_WORKLOAD, gbps=data["memcpy"]["result"]["memmove_gbps"],
                     items="; ".join(f"{label(data, r['peer'])} {r['of_limit']:.2f}x" for r in lim))
    pres = (data.get("pool") or {}).get("result") or {}
    parts = []
    for var in pool_variants(pres) or []:
        secs = {q.get("name"): q.get("seconds") for q in var["peers"]}
        xq: dict[str, Any] = next((q for q in var["peers"] if "xchannels" in str(q.get("name"))), {})
        xs, mp, sv = xq.get("seconds"), secs.get("multiprocessing.Pool"), xq.get("speedup_vs_serial")
        if isinstance(xs, (int, float)) and xs > 0:
            parts.append(f"{var['name']}: {xs:.3g} s" + (f", {sv:.2g}x serial" if isinstance(sv, (int, float)) else "")
                         + (f", {mp / xs:.2g}x multiprocessing.Pool" if isinstance(mp, (int, float)) else ""))
    if parts:
        out += block("reading_pool", items="; ".join(parts))
    mem = pres.get("memory") or {}
    by = {p["name"]: p for p in mem.get("peers", []) if "added_mib" in p}
    xs, sp = by.get("xchannels.Pool"), by.get("multiprocessing.Pool[spawn]")
    if xs and sp and mem.get("spawn_over_xchannels"):
        out += block("reading_memory", metric=mem.get("metric"), x=xs["added_mib"], spawn=sp["added_mib"],
                     ratio=mem["spawn_over_xchannels"])
    return out + block("reading")


def wide_table(data: dict[str, Any], workloads: list[str], images: dict[str, str], image: str) -> list[str]:
    """One row per workload, one column per peer: the figure and its ratio to multiprocessing.Queue."""
    cells, peers, notes = cells_by(data), data["peers_order"], []
    rows = []
    for w in workloads:
        row = [w]
        for p in peers:
            c = cells.get((w, p))
            if c and c.get("status") == "ok":
                r = ratio(data, w, p)
                row.append(cell_value_text(c) + (f" **{ratio_str(r)}**" if r and p != BASELINE else ""))
            else:
                notes.append(f"{w} / {p}: {status_text(c)}")
                row.append((c or {}).get("status", "not run") + f" [{len(notes)}]")
        rows.append(row)
    return image_md(images, image) + md_table(["workload"] + [label(data, p) for p in peers], rows) + [
        "", "Bold: speed relative to multiprocessing.Queue in this run (> 1 = faster)."] + notes_lines(notes)


def how_lines(data: dict[str, Any], workloads: list[str], head: str) -> list[str]:
    how = [f"{w} / {p}: {c['how']}" for w in workloads for p in data["peers_order"]
           if (c := cells_by(data).get((w, p))) and c.get("how")]
    return [head + "; ".join(how) + ".", ""] if how else []


def memcpy_md(data: dict[str, Any]) -> list[str]:
    """The docs' paragraph on stream-bytes-1MiB's physical limit."""
    rows = memcpy_rows(data)
    mc = data.get("memcpy") or {}
    if not rows:
        return [f"The memcpy limit of `{MEMCPY_WORKLOAD}` was not measured: {mc.get('note', '?')}.", ""] \
            if mc and mc.get("status") != "ok" else []
    res, llc = mc["result"], mc["result"].get("llc") or {}

    def mib(b: Any) -> str:
        return f"{b / 2**20:.0f} MiB" if isinstance(b, (int, float)) else "?"

    L = block("memcpy", workload=MEMCPY_WORKLOAD, set_mib=mib(res.get("set_bytes")), sysfs=mib(llc.get("sysfs_bytes")),
              getconf=mib(llc.get("getconf_bytes")), **res)
    L += [""] + md_table(["peer", "MB/s", "of the limit"], [
        [label(data, r["peer"]), r["status"].replace("|", "/"), "-"] if r["bytes_per_s"] is None else
        [label(data, r["peer"]), f"{si(r['bytes_per_s'], 'B')}/s",
         f"{r['of_limit']:.2f}x" + ("" if r["copies"] else " (references, no copy)")] for r in rows])
    return L + [""] + block("memcpy_after") + [""]


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
    names = pool_peer_names(pv)

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
    L += [f"- {v['name']}: {v['note']}" for v in pv if v.get("note")] + memory_md(res.get("memory"))
    reuse = res.get("reusable")
    if isinstance(reuse, dict) and isinstance(reuse.get("later_median_ms"), (int, float)):
        L += [""] + block("reusable", tasks=reuse.get("tasks", 4), figures=reusable_text(reuse))
    extra = {k: v for k, v in res.items() if k != "variants" and not isinstance(v, (dict, list))}
    return L + (["", "Settings: " + ", ".join(f"{k} = {v}" for k, v in extra.items()) + "."] if extra else [])


def memory_md(mem: Any) -> list[str]:
    """bench_pool's memory figures (``result["memory"]``) as a table."""
    if not isinstance(mem, dict) or not mem.get("peers"):
        return []
    metric = mem.get("metric", "?")
    L = [""] + block("memory", workers=mem.get("workers", 2), metric=metric,
                     pss=BLOCKS["pss"] if metric == "PSS" else "") + [""]
    L += md_table(["pool", f"{metric} added", "parent", "workers", "helpers", "RSS added"], [
        [p["name"], f"error: {str(p['error'])[:80].replace('|', '/')}", "", "", "", ""] if "error" in p else
        [p["name"], f"**{p['added_mib']:.1f} MiB**", f"{p['parent_added_mib']:.1f} MiB", f"{p['workers_mib']:.1f} MiB",
         f"{p['helpers_mib']:.1f} MiB" + (f" ({', '.join(p['helpers'])})" if p.get("helpers") else ""),
         f"{p['rss_added_mib']:.1f} MiB"] for p in mem["peers"]])
    r = mem.get("spawn_over_xchannels")
    by = {p["name"]: p for p in mem["peers"] if "added_mib" in p}
    xs, sp = by.get("xchannels.Pool"), by.get("multiprocessing.Pool[spawn]")
    if r and xs and sp and xs["added_mib"] > 0:
        L += [""] + block("memory_ratio", r=r, metric=metric, workers=sp["workers_mib"] / xs["added_mib"],
                          rss=sp["rss_added_mib"] / xs["rss_added_mib"])
    return L


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


def cpp_md(data: dict[str, Any], cpp: dict[str, Any]) -> list[str]:
    failed = ["Failed or timed out: " + "; ".join(f"{k} ({v})" for k, v in cpp["failed"].items()) + ".", ""] \
        if cpp.get("failed") else []
    return block("cpp") + [""] + failed + md_table(
        ["workload", "flavour", "figure", "vs raw moodycamel", "vs blocking moodycamel"],
        [[r["workload"], r["flavor"], r["figure"], ratio_str(r["vs_raw"]), ratio_str(r["vs_blocking"])]
         for r in cpp_rows(cpp)])


# The page's sections after the cells' tables: name -> (title, its image, a maker of its lines from the
# section's figures, [] if there are none). A section missing from the JSON is left out if it came later
# than the oldest saved runs (values, asgi), else said to be not measured.
SECTIONS: dict[str, tuple[str, str, Any]] = {
    "values": ("## Values: encode + decode against pickle", "", values_md),
    "pool": ("## Pool", "pool_speedup", pool_md),
    "asgi": ("## ASGI servers under load", "", asgi_md),
    "dask": ("## Dask: one worker process with interpreters against worker processes", "", dask_md),
    "cpp": ("## C++ micro-benchmarks: Channel against raw moodycamel", "", cpp_md),
}


def section_md(data: dict[str, Any], name: str, images: dict[str, str] | None = None) -> list[str]:
    """A section of the page: its title and image, then its figures, or why it has none."""
    title, image, make = SECTIONS[name]
    sec = data.get(name)
    if sec is None and name in ("values", "asgi"):
        return []
    sec = sec or {}
    res = sec if name == "cpp" else sec.get("result") or {}
    body = make(data, res) if sec.get("status") == "ok" else []
    if not body:
        return [title, "", f"Not measured in this run: {sec.get('note') or res.get('note') or 'no figures'}.", ""]
    return [title, ""] + image_md(images or {}, image) + body + [""]


def docs_markdown(data: dict[str, Any], json_rel: str, images: dict[str, str]) -> str:
    m, wls = data["machine"], data["workloads_order"]
    L = block("header", json_rel=json_rel, date=data["date"], commit=data["commit"], cpu=m.get("cpu_model", "?"),
              cpus=m.get("cpu_count", "?"), uname=m.get("uname", "?"),
              python=data["python"].get("bench", "?").split()[0], compiler=data.get("compiler", "?"),
              seconds=data.get("run_seconds", 0), rounds=data.get("rounds", 1),
              quick=" **This is a `--quick` run: short cells, rough figures.**" if data.get("quick") else "")
    L += [""] + [f"- **{g['status']}** {g['goal']}: {g['detail']}" for g in data.get("goals", [])] + [""]
    L += other_pythons_md(data) + ["## Peers", ""]
    L += md_table(["peer", "what", "actors run in"], [[p, label(data, p), data["peer_info"][p]["where"]]
                                                       for p in data["peers_order"]])
    L += [""] + block("method", target=data.get("target_seconds", 0)) + [""] + reading_lines(data)
    streams = [w for w in wls if w.startswith("stream-")]
    L += ["", "## Streams: one producer, one consumer", ""]
    L += wide_table(data, streams, images, "throughput") + [""]
    L += how_lines(data, streams, "How: ") + memcpy_md(data) + ["## Round-trip latency", ""]
    L += wide_table(data, ["pingpong"], images, "latency") + [""]
    L += ["## Patterns: several producers or consumers, select, batches", ""]
    L += wide_table(data, [w for w in PATTERNS if w in wls], images, "patterns") + [""]
    L += how_lines(data, ["batch", "select-4"], "How each peer did `batch` and `select-4`: ")
    return "\n".join(L + [line for name in SECTIONS for line in section_md(data, name, images)])


def add_other_pythons(data: dict[str, Any], paths: list[str]) -> None:
    """Keep each run on another Python (run.py --out FILE) whole under
    ``other_pythons``, by version; unreadable files under ``other_pythons_missing``."""
    for path in paths:
        try:
            other = json.loads(Path(path).read_text())
            data.setdefault("other_pythons", {})[other["python"]["bench"].split()[0]] = other
        except (OSError, ValueError, KeyError, AttributeError) as e:
            data.setdefault("other_pythons_missing", {})[path] = f"{type(e).__name__}: {e}"


def write_docs(data: dict[str, Any], json_path: Path, made: list[Path]) -> Path:
    """docs/benchmarks.md; the run's JSON becomes the one tracked copy,
    benchmarks/results/latest.json, which the page links as its raw data."""
    if json_path.resolve() != LATEST.resolve():
        LATEST.parent.mkdir(parents=True, exist_ok=True)
        LATEST.write_text(json.dumps(data, indent=1) + "\n")
    images = {p.stem.removeprefix("bench-"): f"img/{p.name}" for p in made}
    out = DOCS / "benchmarks.md"
    out.write_text(docs_markdown(data, str(LATEST.relative_to(ROOT)), images), encoding="utf-8")
    return out


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description="table, goals, plots and docs/benchmarks.md from a saved run")
    ap.add_argument("json", help="a run's JSON (build/bench/*.json or benchmarks/results/latest.json)")
    ap.add_argument("--with", dest="with_results", action="append", default=[], metavar="FILE",
                    help="a run on another Python (run.py --out FILE) to include; repeatable")
    args = ap.parse_args()
    path = Path(args.json)
    data = json.loads(path.read_text())
    add_other_pythons(data, args.with_results)
    print("\n".join(table_lines(data)))
    print("\n".join(goal_lines(data) + other_pythons_lines(data)))
    made = plots(data)
    print("plots:", ", ".join(str(p.relative_to(ROOT)) for p in made))
    print("docs:", write_docs(data, path, made).relative_to(ROOT))


if __name__ == "__main__":
    main()
