"""The rows of the results table and the table itself (results.md)."""
from verdict import is_timed


def row(bench, name, mpmap, baseline, ratio, target, ok, note="", **judging):
    """A row with a target. judging: bound (the physical limit of its figure, e.g. a
    speed-up's rank count), series (the names of the repetitions it is computed from,
    default all of its benchmark's), timed (default: it has a ratio); see verdict.py."""
    return {"bench": bench, "name": name, "mpmap": mpmap, "baseline": baseline, "ratio": ratio,
            "target": target, "status": "PASS" if ok else "FAIL", "note": note, **judging}


def info_row(bench, name, mpmap, baseline="", ratio="", note="", **judging):
    return {"bench": bench, "name": name, "mpmap": mpmap, "baseline": baseline, "ratio": ratio,
            "target": "", "status": "info", "note": note, **judging}


def na_row(bench, name, reason):
    return {"bench": bench, "name": name, "mpmap": "", "baseline": "", "ratio": "", "target": "",
            "status": reason if reason.startswith("n/a") else f"n/a ({reason})", "note": ""}


def fmt_s(x):
    return f"{x:.3g} s"


def fmt_rate(x, unit):
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= scale:
            return f"{x / scale:.3g} {suffix}{unit}"
    return f"{x:.3g} {unit}"


def fmt_x(x):
    return f"{x:.3g}x"


def markdown(rows, meta, plots):
    policy = meta["policy"]
    lines = [
        "# mpmap benchmarks",
        "",
        f"{meta['date']} on {meta['host']} ({meta['cores']} cores), "
        f"{'--quick' if meta['quick'] else 'full'} run, {meta['elapsed_s']:.0f} s; "
        f"load average before/after: {fmt_load(meta['load_start'])} / {fmt_load(meta['load_end'])}"
        + (" (with a CPU hog beside the bench)." if meta.get("hog") else "."),
        "Every ratio compares runs of this session, alternated, medians of several repetitions.",
        "",
        f"Noise: the spread of the row's timed repetitions ({meta['spread_measure']}; limit "
        f"{policy['spread_limit']:.0%} unless a benchmark sets its own) and the mean number of "
        "runnable tasks that are not the bench's own, in the second before the row and while "
        f"it ran (limit {policy['others_limit']:g}). Load: the 1-minute load average before -> "
        f"after the row ({meta['cores']} cores; it includes the bench's own processes). A row "
        "above a limit keeps its PASS/FAIL only if the disturbance cannot explain it (loaded: "
        f"a PASS by more than {policy['decisive']:g}x its target; quiet: farther from its target "
        f"than its spread); else it is run again (up to {policy['max_attempts']} attempts) and "
        "then is NOISY. A figure above its physical bound is IMPLAUSIBLE.",
        "",
        "| benchmark | mpmap | baseline | ratio | target | result | noise | load | note |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        cells = [str(r[k]) for k in ("name", "mpmap", "baseline", "ratio", "target", "status")]
        cells += [fmt_noise(r), fmt_row_load(r), row_note(r)]
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    if plots:
        lines += ["", "Plots: " + ", ".join(f"[{p}]({p})" for p in plots)]
    return "\n".join(lines) + "\n"


def fmt_noise(r):
    """'spread 3.1%, others 0.0': spread '-' for a single run, none for a row that is not
    a timing; others the larger of before and during the row."""
    if "others_during" not in r and "spread" not in r:
        return ""
    cells = []
    if is_timed(r):
        cells.append("spread " + ("-" if r.get("spread") is None else f"{r['spread']:.1%}"))
    others = [r.get(k) for k in ("others_before", "others_during")]
    others = [x for x in others if x is not None]
    if others:
        cells.append(f"others {max(others):.1f}")
    return ", ".join(cells)


def fmt_row_load(r):
    a, b = r.get("load1_before"), r.get("load1_after")
    return "" if a is None or b is None else f"{a:.2f} -> {b:.2f}"


def row_note(r):
    """The row's note, after why its verdict is what it is when noise decided it."""
    why = r.get("reasons") or []
    if not why:
        return str(r["note"])
    tries = r.get("attempts", 1)
    what = r["status"] if r["status"] in ("NOISY", "IMPLAUSIBLE") else "disturbed"
    head = f"{what}{f' after {tries} attempts' if tries > 1 else ''}: {'; '.join(why)}"
    return f"{head}. {r['note']}" if r["note"] else head


def fmt_load(load):
    return "?" if not load else f"{load[0]:.2f}"


def readme_table(rows):
    """The README's copy of the table: the figures, the verdict and the noise it was
    judged by (the full notes stay in results.md)."""
    lines = ["| benchmark | mpmap | baseline | ratio | target | result | noise |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        cells = [str(r[k]) for k in ("name", "mpmap", "baseline", "ratio", "target", "status")]
        cells.append(fmt_noise(r))
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return "\n".join(lines) + "\n"
