"""``selfplay bench``: is verified self-generated data worth more than raw data, at equal budget?

Every arm of a seed starts from the same seed model (trained once on U, shared by hard links) and
gets the same training-token budget (``loop.iterations x train.tokens``). Arms are runs of the
ordinary loop with config overrides, so each one is a normal, resumable run directory:

    <bench>/bench.yaml                    resolved bench config
    <bench>/seed_<s>/<arm>/...            one run directory per arm and seed
    <bench>/results.parquet               one row per arm x seed x checkpoint
    <bench>/report.md, *.png              tables (mean +- 95% CI over seeds) and plots
"""

from __future__ import annotations

import json
import math
import os
import shutil
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

from selfplay import artifacts
from selfplay.config import ConfigError, RunConfig, _build, config_from_dict, config_to_dict

# Keys that decide the seed model: arms of a bench must agree on them to share it.
SEED_KEYS = (
    "seed",
    "model",
    "task",
    "raw",
    "seed_train",
    "eval",
    "train.batch_size",
    "train.max_length",
    "train.sft",
    "train.packing",
    "train.compile",
    "generation.backend",
)


@dataclass
class BenchConfig:
    name: str = "bench"
    output_dir: str | None = None
    """Bench directory; default ``runs/<name>``."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    """One seed model per seed; every arm is paired with the others through it."""
    run: dict = field(default_factory=dict)
    """The run config every arm starts from (same keys as ``selfplay run``)."""
    arms: dict = field(default_factory=dict)
    """Arm name -> list of ``key=value`` overrides of ``run``."""
    reference: str = "raw-fresh-1x"
    """The arm that paired differences are taken against."""
    sweep: dict = field(default_factory=dict)
    """Regime axes: axis -> {level -> list of ``key=value`` overrides of ``run``}. Every
    combination of levels (one per axis) is a regime, and every arm runs in every regime, in
    ``<bench>/<level>-<level>/``. Empty: a single regime (the plain bench)."""

    @property
    def bench_dir(self) -> Path:
        return Path(self.output_dir) if self.output_dir else Path("runs") / self.name


def _get(d: dict, dotted: str):
    for part in dotted.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


def load_bench_config(
    path: str | Path, overrides: list[str] = ()
) -> tuple[BenchConfig, dict[str, RunConfig]]:
    """Parse a bench YAML, and resolve and validate every arm's run config (for seed ``seeds[0]``)."""
    from selfplay.config import parse_override

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        raise ConfigError(f"{path}: not valid YAML") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of keys")
    data.setdefault("name", path.stem)
    for text in overrides:  # run.<key>=... lands in the arms' shared run config like any key
        keys, value = parse_override(text)
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{text}: '{k}' is not a section")
        node[keys[-1]] = value
    bench = _build(BenchConfig, data)
    if not bench.seeds:
        raise ConfigError("seeds: need at least one seed")
    if not bench.arms:
        raise ConfigError("arms: need at least one arm")
    arms = {}
    for name, arm_overrides in bench.arms.items():
        if not isinstance(arm_overrides, list) or not all(
            isinstance(o, str) for o in arm_overrides
        ):
            raise ConfigError(f"arms.{name}: expected a list of key=value overrides")
        if "/" in str(name) or not str(name):
            raise ConfigError(f"arms.{name}: an arm name must be non-empty, without '/'")
        try:
            arms[name] = arm_config(bench, name, bench.seeds[0])
        except ConfigError as exc:
            raise ConfigError(f"arms.{name}: {exc}") from None
    first_name, first = next(iter(arms.items()))
    first_dict = config_to_dict(first)
    for name, cfg in arms.items():
        cfg_dict = config_to_dict(cfg)
        for key in SEED_KEYS:
            if _get(first_dict, key) != _get(cfg_dict, key):
                raise ConfigError(
                    f"arms.{name}: changes {key}, which the seed model depends on; arms must share it with '{first_name}'"
                )
    if bench.reference not in arms:
        raise ConfigError(f"reference: {bench.reference!r} is not an arm; arms: {', '.join(arms)}")
    if bench.sweep:
        from selfplay.sweep import regimes, sub_bench

        for name, _, regime_overrides in regimes(bench):
            sub = sub_bench(bench, name, regime_overrides)
            for arm in sub.arms:
                try:
                    arm_config(sub, arm, bench.seeds[0])
                except ConfigError as exc:
                    raise ConfigError(f"sweep regime {name}, arm {arm}: {exc}") from None
    return bench, arms


def arm_config(bench: BenchConfig, arm: str, seed: int) -> RunConfig:
    out = bench.bench_dir / f"seed_{seed}" / arm
    return config_from_dict(
        bench.run, [*bench.arms[arm], f"seed={seed}", f"name={arm}", f"output_dir={out}"]
    )


def _share_seed(src: Path, dst: Path) -> None:
    """Give an arm the seed model another arm trained (hard links; atomic rename)."""
    if (dst / "metrics.json").exists() or not (src / "metrics.json").exists():
        return
    tmp = dst.with_name(f".seed.tmp-{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(src, tmp, copy_function=os.link)
    if dst.exists():
        shutil.rmtree(dst)
    os.replace(tmp, dst)


def run_bench(
    bench: BenchConfig, arms: dict[str, RunConfig], console=None, progress: bool = True
) -> list[dict]:
    """Run (or resume) every arm for every seed, then write results, report and plots."""
    from selfplay.loop import run

    if bench.sweep:
        from selfplay.sweep import run_sweep

        return run_sweep(bench, console=console, progress=progress)

    bench_dir = bench.bench_dir
    bench_dir.mkdir(parents=True, exist_ok=True)
    artifacts.write_text(bench_dir / "bench.yaml", yaml.safe_dump(asdict(bench), sort_keys=False))
    t0 = time.perf_counter()
    total = len(bench.seeds) * len(arms)
    done = 0
    for seed in bench.seeds:
        shared = None
        for name in arms:
            cfg = arm_config(bench, name, seed)
            done += 1
            if console is not None:
                console.print(
                    f"[bold]bench[/] {done}/{total}: seed {seed}, arm [cyan]{name}[/]  ({time.perf_counter() - t0:.0f}s so far)"
                )
            if shared is not None:
                _share_seed(shared, cfg.run_dir / "seed")
            run(cfg, console=None, progress=progress)
            shared = shared or cfg.run_dir / "seed"
    rows = collect_results(bench, arms)
    artifacts.write_parquet(bench_dir / "results.parquet", rows)
    plots = write_plots(bench_dir, rows)
    report = build_report(bench, arms, rows, plots, wall=time.perf_counter() - t0)
    artifacts.write_text(bench_dir / "report.md", report)
    return rows


# ------------------------------------------------------------------------------------------------
# Results


def collect_results(bench: BenchConfig, arms: dict[str, RunConfig]) -> list[dict]:
    """One row per arm x seed x checkpoint (the seed model is every arm's checkpoint 0)."""
    rows = []
    for seed in bench.seeds:
        for name in arms:
            cfg = arm_config(bench, name, seed)
            path = cfg.run_dir / "metrics.jsonl"
            if not path.exists():
                continue
            stages = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            seed_row = stages[0]
            u_tokens = seed_row["raw"].get("tokens") or 1
            for st in stages:
                ev, cum = st["eval"], st["cumulative"]
                row = {
                    "arm": name,
                    "seed": seed,
                    "stage": st["stage"],
                    "iteration": st["iteration"],
                    "source": cfg.loop.data_source,
                    "fresh_multiplier": cfg.loop.fresh_multiplier
                    if cfg.loop.data_source == "raw-fresh"
                    else None,
                    "train_tokens": cum["train_tokens"] - seed_row["cumulative"]["train_tokens"],
                    "generated_tokens": cum["generated_tokens"],
                    "verifier_calls": cum["verifier_calls"],
                    "flops": float(cum["flops"] - seed_row["cumulative"]["flops"]),
                    "seconds": cum.get("seconds", 0.0) - seed_row["cumulative"].get("seconds", 0.0),
                    "epochs_of_U": (cum["train_tokens"] - seed_row["cumulative"]["train_tokens"])
                    / u_tokens,
                    "acc_in": ev.get("accuracy_in"),
                    "acc_harder": ev.get("accuracy_harder"),
                    "valid": ev.get("valid", {}).get("all"),
                    "pass_rate": st.get("generate", {}).get("pass_rate"),
                    "kept": st.get("filter", {}).get("kept"),
                    "distinct_correct_chains": st.get("generate", {}).get(
                        "distinct_correct_chains_per_problem"
                    ),
                    "unique_answers": st.get("generate", {}).get("unique_answers_per_problem"),
                    "reuse": st["train"].get("reuse") if st["iteration"] else None,
                    "seed_train_tokens": seed_row["train"]["tokens"],
                }
                for key, by_d in ev.items():
                    if isinstance(by_d, dict) and key.startswith(("pass@", "maj@")):
                        row[key] = by_d.get("all")
                for d, v in ev["accuracy"].items():
                    if d != "all":
                        row[f"acc_{d}"] = v
                rows.append(row)
    return rows


_T95 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    12: 2.179,
    15: 2.131,
    20: 2.086,
    30: 2.042,
}


def t_critical(df: int) -> float:
    """Two-sided 95% Student-t critical value (table; 1.96 beyond 30 degrees of freedom)."""
    if df < 1:
        return math.nan
    if df in _T95:
        return _T95[df]
    smaller = [k for k in _T95 if k < df]
    return _T95[max(smaller)] if df < 30 else 1.96


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval (t distribution; nan for n < 2).

    >>> mean_ci([1.0, 2.0, 3.0])
    (2.0, 2.484...)
    """
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return math.nan, math.nan
    m = statistics.fmean(vals)
    if len(vals) < 2:
        return m, math.nan
    return m, t_critical(len(vals) - 1) * statistics.stdev(vals) / math.sqrt(len(vals))


def _final(rows: list[dict]) -> dict[tuple[str, int], dict]:
    out = {}
    for r in rows:
        key = (r["arm"], r["seed"])
        if key not in out or r["iteration"] > out[key]["iteration"]:
            out[key] = r
    return out


def _fmt(m: float, h: float, digits: int = 3) -> str:
    if m is None or math.isnan(m):
        return "-"
    return f"{m:.{digits}f}" if math.isnan(h) else f"{m:.{digits}f} ± {h:.{digits}f}"


def effective_multiplier(acc: float, fresh: list[tuple[float, float]]) -> str:
    """How much fresh raw data (in multiples of U) reaches accuracy ``acc``: piecewise-linear
    interpolation in log(multiplier) over the raw-fresh arms' (multiplier, accuracy) points."""
    pts = sorted(fresh)
    if not pts or acc is None or math.isnan(acc):
        return "-"
    if acc < pts[0][1]:
        return f"< {pts[0][0]:g}x"
    if acc > max(a for _, a in pts):
        return f"> {pts[-1][0]:g}x"
    for (m0, a0), (m1, a1) in zip(pts, pts[1:], strict=False):
        if min(a0, a1) <= acc <= max(a0, a1) and a1 != a0:
            t = (acc - a0) / (a1 - a0)
            return f"{math.exp(math.log(m0) + t * (math.log(m1) - math.log(m0))):.2f}x"
    best = min(pts, key=lambda p: abs(p[1] - acc))
    return f"~{best[0]:g}x"


def build_report(
    bench: BenchConfig, arms: dict[str, RunConfig], rows: list[dict], plots: list[str], wall: float
) -> str:
    import platform

    final = _final(rows)
    any_cfg = next(iter(arms.values()))
    budget = statistics.fmean(r["train_tokens"] for r in final.values()) if final else 0
    diffs = _difficulties(rows)
    ks = sorted({k for r in rows for k in r if k.startswith(("pass@", "maj@"))})
    lines = [
        f"# Bench `{bench.name}`",
        "",
        f"Seeds {bench.seeds}; every arm of a seed starts from that seed's model_0 (trained on U: "
        f"{any_cfg.raw.size} problems, difficulties {any_cfg.raw.difficulties}, "
        f"{rows[0]['seed_train_tokens'] if rows else 0:,} tokens) "
        f"and trains a budget of {budget:,.0f} tokens in {any_cfg.loop.iterations} rounds. "
        f"Accuracy is greedy exact match on held-out problems; *in* = difficulties {any_cfg.raw.difficulties}, "
        f"*harder* = the rest of {any_cfg.eval.difficulties}. Mean ± 95% CI over seeds (t distribution).",
        "",
        f"Wall time {wall / 60:.1f} min on {platform.machine()} ({os.cpu_count()} CPUs).",
        "",
        "## At equal training tokens (final checkpoint)",
        "",
        "| arm | train tokens | acc in | acc harder | "
        + " | ".join(f"d{d}" for d in diffs)
        + " | valid | "
        + " | ".join(ks)
        + " | gen tokens | FLOPs | wall s | budget in epochs of U | distinct correct chains / problem |",
        "|---" * (10 + len(diffs) + len(ks)) + "|",
    ]
    for name in arms:
        rs = [final[(name, s)] for s in bench.seeds if (name, s) in final]
        if not rs:
            continue

        def col(k, rs=rs):
            return _fmt(*mean_ci([r.get(k) for r in rs]))

        lines.append(
            f"| {name} | {statistics.fmean(r['train_tokens'] for r in rs):,.0f} | {col('acc_in')} | {col('acc_harder')} | "
            + " | ".join(col(f"acc_{d}") for d in diffs)
            + f" | {col('valid')} | "
            + " | ".join(col(k) for k in ks)
            + f" | {statistics.fmean(r['generated_tokens'] for r in rs):,.0f} | {statistics.fmean(r['flops'] for r in rs):.2e}"
            + f" | {statistics.fmean(r['seconds'] for r in rs):.0f} | {statistics.fmean(r['epochs_of_U'] for r in rs):.1f}"
            + f" | {_fmt(*mean_ci([r.get('distinct_correct_chains') for r in rs]), digits=2)} |"
        )
    seed_rows = [r for r in rows if r["iteration"] == 0 and r["arm"] == next(iter(arms))]
    lines += [
        "",
        f"Seed model (every arm's start): acc in {_fmt(*mean_ci([r['acc_in'] for r in seed_rows]))}, acc harder {_fmt(*mean_ci([r['acc_harder'] for r in seed_rows]))}.",
        "",
    ]

    # Paired differences against the reference arm.
    ref = bench.reference
    lines += [
        f"## Paired with `{ref}` (same seed model; difference of final accuracy)",
        "",
        "| arm | Δ acc in | Δ acc harder | per-seed Δ acc in |",
        "|---|---|---|---|",
    ]
    for name in arms:
        if name == ref:
            continue
        pairs = [
            (final[(name, s)], final[(ref, s)])
            for s in bench.seeds
            if (name, s) in final and (ref, s) in final
        ]
        d_in = [a["acc_in"] - b["acc_in"] for a, b in pairs]
        d_h = [
            a["acc_harder"] - b["acc_harder"]
            for a, b in pairs
            if a["acc_harder"] is not None and b["acc_harder"] is not None
        ]
        lines.append(
            f"| {name} | {_fmt(*mean_ci(d_in))} | {_fmt(*mean_ci(d_h))} | {', '.join(f'{d:+.3f}' for d in d_in)} |"
        )

    # Effective-data multiplier.
    fresh = {}
    for r in final.values():
        if r["source"] == "raw-fresh":
            fresh.setdefault(r["fresh_multiplier"], []).append(r["acc_in"])
    curve = [(m, statistics.fmean(v)) for m, v in fresh.items()]
    if curve:
        lines += [
            "",
            "## Effective-data multiplier",
            "",
            "How much fresh raw data (multiples of U, at the same token budget) reaches the same in-distribution accuracy:",
            "",
            "| arm | acc in | worth |",
            "|---|---|---|",
        ]
        for name in arms:
            rs = [final[(name, s)] for s in bench.seeds if (name, s) in final]
            if rs and rs[0]["source"] != "raw-fresh":
                m = statistics.fmean(r["acc_in"] for r in rs)
                lines.append(f"| {name} | {m:.3f} | {effective_multiplier(m, curve)} |")
        lines.append("")
        lines.append("raw-fresh curve: " + ", ".join(f"{m:g}x → {a:.3f}" for m, a in sorted(curve)))

    # Equal total compute.
    lines += [
        "",
        "## At equal total compute (training + generation FLOPs)",
        "",
        "Self-play spends compute on generation; each self-play checkpoint is compared with each raw arm's accuracy interpolated at the same FLOPs, where the raw arm's curve reaches that far.",
        "",
        "| self-play arm | checkpoint | FLOPs | acc in | "
        + " | ".join(n for n in arms if arms[n].loop.data_source != "selfplay")
        + " |",
        "|---" * (4 + sum(arms[n].loop.data_source != "selfplay" for n in arms)) + "|",
    ]
    raw_arms = [n for n in arms if arms[n].loop.data_source != "selfplay"]
    curves = {n: _mean_curve(rows, n, "flops", "acc_in") for n in arms}
    for name in arms:
        if arms[name].loop.data_source != "selfplay":
            continue
        for it, (x, y) in enumerate(curves[name][1:], start=1):
            cells = []
            for rn in raw_arms:
                v = _interp(curves[rn], x)
                cells.append("beyond its budget" if v is None else f"{v:.3f}")
            lines.append(f"| {name} | round {it} | {x:.2e} | {y:.3f} | " + " | ".join(cells) + " |")
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def _difficulties(rows: list[dict]) -> list[str]:
    """The difficulties that have an ``acc_<d>`` column, in order."""
    return sorted(
        {k[4:] for r in rows for k in r if k.startswith("acc_") and k[4:].isdigit()}, key=int
    )


def _by_iteration(rows: list[dict], arm: str) -> list[list[dict]]:
    """An arm's rows (all seeds) grouped by checkpoint, in order."""
    by_it: dict[int, list[dict]] = {}
    for r in rows:
        if r["arm"] == arm:
            by_it.setdefault(r["iteration"], []).append(r)
    return [rs for _, rs in sorted(by_it.items())]


def _mean_curve(rows: list[dict], arm: str, x: str, y: str) -> list[tuple[float, float]]:
    return [
        (statistics.fmean(r[x] for r in rs), statistics.fmean(r[y] for r in rs if r[y] is not None))
        for rs in _by_iteration(rows, arm)
    ]


def _interp(curve: list[tuple[float, float]], x: float) -> float | None:
    for (x0, y0), (x1, y1) in zip(curve, curve[1:], strict=False):
        if x0 <= x <= x1:
            return y0 if x1 == x0 else y0 + (x - x0) / (x1 - x0) * (y1 - y0)
    return None


def write_plots(bench_dir: Path, rows: list[dict]) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = list(dict.fromkeys(r["arm"] for r in rows))
    names = []

    def save(fig, name):
        fig.tight_layout()
        tmp = bench_dir / f".{name}.tmp.png"
        fig.savefig(tmp, dpi=110)
        plt.close(fig)
        os.replace(tmp, bench_dir / name)
        names.append(name)

    # 1. Accuracy vs training tokens, per arm, mean with a 95% band.
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, title in [
        (axes[0], "acc_in", "in-distribution"),
        (axes[1], "acc_harder", "harder than U"),
    ]:
        for arm in arms:
            xs, ms, hs = [], [], []
            for rs in _by_iteration(rows, arm):
                m, h = mean_ci([r[key] for r in rs])
                xs.append(statistics.fmean(r["train_tokens"] for r in rs))
                ms.append(m)
                hs.append(0.0 if math.isnan(h) else h)
            ax.plot(xs, ms, marker="o", label=arm)
            lo = [max(0.0, m - h) for m, h in zip(ms, hs, strict=True)]  # accuracy lives in [0, 1]
            hi = [min(1.0, m + h) for m, h in zip(ms, hs, strict=True)]
            ax.fill_between(xs, lo, hi, alpha=0.15)
        ax.set_xlabel("training tokens after the seed model")
        ax.set_ylabel("greedy accuracy")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    save(fig, "accuracy_vs_tokens.png")

    # 2. Final accuracy by difficulty.
    final = _final(rows)
    diffs = _difficulties(rows)
    fig, ax = plt.subplots(figsize=(11, 4))
    width = 0.8 / max(len(arms), 1)
    for i, arm in enumerate(arms):
        rs = [r for (a, _), r in final.items() if a == arm]
        stats = [mean_ci([r.get(f"acc_{d}") for r in rs]) for d in diffs]
        ax.bar(
            [j + i * width for j in range(len(diffs))],
            [m for m, _ in stats],
            width,
            yerr=[0 if math.isnan(h) else h for _, h in stats],
            label=arm,
            capsize=2,
        )
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(diffs))], [f"{d} digits" for d in diffs])
    ax.set_ylabel("final greedy accuracy")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(axis="y", alpha=0.3)
    save(fig, "accuracy_by_difficulty.png")

    # 3. Self-play yield per round.
    sp = [a for a in arms if any(r["arm"] == a and r["pass_rate"] is not None for r in rows)]
    if sp:
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        for arm in sp:
            for ax, key in [(axes[0], "pass_rate"), (axes[1], "kept")]:
                pts = _mean_curve([r for r in rows if r[key] is not None], arm, "iteration", key)
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=arm)
        axes[0].set_ylabel("sample pass rate")
        axes[1].set_ylabel("kept samples")
        for ax in axes:
            ax.set_xlabel("round")
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7)
        save(fig, "selfplay_yield.png")

    # 4. The data wall: raw-repeat accuracy against epochs of U.
    rep = [a for a in arms if any(r["arm"] == a and r["source"] == "raw-repeat" for r in rows)]
    if rep:
        fig, ax = plt.subplots(figsize=(6, 4))
        for arm in rep:
            pts = _mean_curve(rows, arm, "epochs_of_U", "acc_in")
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=arm)
        ax.set_xlabel("epochs of U after the seed model")
        ax.set_ylabel("in-distribution accuracy")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        save(fig, "raw_repeat_epochs.png")
    return names
