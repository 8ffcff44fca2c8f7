"""What `bench.distill` prints and draws: a table per data set, the timing of the chain against one-shot,
the plain reading against the research write-up's claims, and the retention-against-compression plot."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from bench.common import ROOT, table

# The research write-up: M3 keeps 90-95% of M0 through the chain, 75-85% one-shot; the chain costs 1.5-2.5×.
CLAIM_CHAIN, CLAIM_ONE_SHOT, CLAIM_OVERHEAD = (0.90, 0.95), (0.75, 0.85), (1.5, 2.5)
LABELS = {"r2": "R²", "balanced_accuracy": "bal. acc.", "accuracy": "accuracy"}


def row_of(rows: list[dict[str, Any]], variant: str, tier: str) -> dict[str, Any]:
    return next(r for r in rows if r["variant"] == variant and r["tier"] == tier)


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """Retention against compression, one panel per data set, one line per variant (mean ± std). Where M0
    has no skill retention means nothing, and the panel shows directional accuracy instead."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5.2 * len(results), 4.2), squeeze=False)
    for ax, res in zip(axes[0], results, strict=True):
        m0 = row_of(res["rows"], "M0", "M0")
        key = "retention" if m0["mean"]["retention"] is not None else "directional_accuracy"
        for variant in dict.fromkeys(r["variant"] for r in res["rows"] if r["variant"] != "M0"):
            rows = [r for r in res["rows"] if r["variant"] == variant]
            if variant.startswith("chain"):
                rows = [m0, *rows]
            points = [(r["compression"], r["mean"][key], r["std"][key] or 0.0) for r in rows
                      if r["mean"][key] is not None]
            if points:
                x, y, err = zip(*sorted(points), strict=True)
                ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=variant)
        ax.set_xscale("log")
        ylabel = ("retention (share of M0's skill)" if key == "retention"
                  else "directional accuracy (M0: no skill)")
        ax.set(xlabel="compression (M0 params / params)", ylabel=ylabel, title=res["name"][:40])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(result: dict[str, Any]) -> str:
    parts = []
    for res in result["sources"]:
        metric = res["metric"]
        target = res["target"]
        parts += [f"### {res['name']}", "",
                  f"Target {target['name']} (horizon {target['horizon']}); {res['train_rows']:,} training "
                  f"rows, {res['test_rows']:,} test rows; one M0, students on seeds "
                  f"{', '.join(map(str, res['seeds']))}"
                  + (f" (other variants on {', '.join(map(str, res['variant_seeds']))})"
                     if res["variant_seeds"] and res["variant_seeds"] != res["seeds"] else "")
                  + f"; {res['teacher_epochs']:g} epochs for M0, "
                  f"{res['student_epochs']:g} for each student, early stopping as configured"
                  + (f"; oracle {LABELS[metric]} {res['oracle']:.4f}" if res["oracle"] else "") + ".", ""]
        head = ["variant", "tier", "shape", "params", "compr.", LABELS[metric], "dir. acc.", "oracle share",
                "retention", "CPU s"]
        rows = [[r["variant"], r["tier"], r["shape"], f"{r['params']:,}", f"{r['compression']:.1f}×",
                 _pm(r, metric), _pm(r, "directional_accuracy"), _pm(r, "oracle_share", pct=True),
                 _pm(r, "retention", pct=True), _pm(r, "cpu_seconds", digits=1)] for r in res["rows"]]
        t, wins = res["timing"], res["chain_beats_one_shot"]["chain"]
        parts += [table(head, rows), "", table(
            ["M0 CPU s", "chain (M1+M2+M3) CPU s", "one-shot CPU s", "chain ÷ one-shot", "incl. M0",
             "same, wall time", "chain M3 beats one-shot"],
            [[_ms(t["m0_seconds"], 1), _ms(t["chain_seconds"], 1), _ms(t["one_shot_seconds"], 1),
              _ms(t["ratio"], 2) + "×", _ms(t["ratio_with_m0"], 2) + "×", _ms(t["wall_ratio"], 2) + "×",
              f"{wins['wins']} of {wins['seeds']} seeds"]]), ""]
    parts += [*(f"Skipped: {s}." for s in result["skipped"]),
              f"Plot (retention against compression, every variant): `{result['plot']}`.", "",
              reading(result)]
    return "\n".join(parts)


def shown(path: Path) -> str:
    return str(path.resolve().relative_to(ROOT)) if path.resolve().is_relative_to(ROOT) else str(path)


def _pm(row: dict[str, Any], key: str, pct: bool = False, digits: int = 4) -> str:
    mean, std = row["mean"][key], row["std"][key]
    if mean is None:
        return "n/a"
    if pct:
        return f"{mean:.1%}" + (f" ± {std:.1%}" if std is not None else "")
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if std is not None else "")


def _ms(values: list[float], digits: int) -> str:
    if len(values) < 2:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def reading(result: dict[str, Any]) -> str:
    """The plain reading: what the numbers say against the write-up's claims, including what is not met."""
    said = [_reading(res) for res in result["sources"]] + [f"Skipped {s}." for s in result["skipped"]]
    return "**Reading.** " + " ".join(said)


def _reading(res: dict[str, Any]) -> str:
    rows, metric = res["rows"], res["metric"]
    m0, chain, one_shot, direct = (row_of(rows, v, t)["mean"] for v, t in
                                   (("M0", "M0"), ("chain", "M3"), ("one-shot", "M3"), ("direct", "M3")))
    name = LABELS[metric]
    if m0["retention"] is None or chain["retention"] is None or one_shot["retention"] is None:
        acc = [_or_na(m["directional_accuracy"]) for m in (m0, chain, one_shot, direct)]
        return (f"On {res['name']} M0 has no skill ({name} {_or_na(m0[metric])}), so retention is undefined; "
                f"directional accuracy is {acc[0]} for M0 and {', '.join(acc[1:])} for the chain's M3, "
                "one-shot and direct: there is no signal here worth distilling.")
    wins, timing = res["chain_beats_one_shot"], res["timing"]
    ratio, with_m0 = statistics.fmean(timing["ratio"]), statistics.fmean(timing["ratio_with_m0"])
    oracle = f" (M0 at {m0['oracle_share']:.0%} of the oracle's skill)" if m0["oracle_share"] else ""
    met = "met" if chain["retention"] >= CLAIM_CHAIN[0] else "NOT met"
    gap = chain["retention"] - one_shot["retention"]
    gap_claim = ("reproduced" if one_shot["retention"] <= CLAIM_ONE_SHOT[1] and gap >= 0.05 else
                 f"NOT reproduced (the chain is {gap:+.1%} against one-shot)")
    m3 = [r for r in rows if r["tier"] == "M3" and r["mean"]["retention"] is not None]
    best = max(m3, key=lambda r: r["mean"]["retention"])
    others = ", ".join(f"{r['variant']} {r['mean']['retention']:.1%}" for r in rows if r["tier"] == "M3"
                       and r["variant"] not in ("chain", "one-shot", "direct") and r["mean"]["retention"])
    return (f"On {res['name']}{oracle} the chain's M3 keeps {chain['retention']:.1%} of M0's skill ({name}), "
            f"one-shot {one_shot['retention']:.1%} and direct {_pct(direct['retention'])}; the chain beats "
            f"one-shot on {wins['chain']['wins']} of {wins['chain']['seeds']} seeds. The write-up's 90-95% "
            f"for the chain is {met}; its 75-85% for one-shot, i.e. a clear gain from going in steps, is "
            f"{gap_claim}. " + (f"Other M3s: {others}; " if others else "")
            + f"the best M3 here is {best['variant']} ({best['mean']['retention']:.1%}). "
            + f"Its three students cost {ratio:.2f}× one-shot's training CPU time ({_inside(ratio)} the "
            f"write-up's 1.5-2.5× overhead), {with_m0:.2f}× counting M0's training in both "
            f"({_inside(with_m0)}).")


def _or_na(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1%}"


def _inside(ratio: float) -> str:
    return "inside" if CLAIM_OVERHEAD[0] <= ratio <= CLAIM_OVERHEAD[1] else "NOT inside"
