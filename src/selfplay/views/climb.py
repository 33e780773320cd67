"""What a climb adds to a run's views: the legend of its columns, its final line and its two
figures. ``selfplay summary`` and ``report.html`` show any run's stage table
(:func:`selfplay.views.run.stage_table`, with a climb's columns) and these;
``scripts/climb_summary.py`` writes the figures next to a published result. Everything is read
from ``metrics.jsonl``'s rows (``selfplay.engine.rundir.read_metrics``) and ``final.json``.

heatmap:  difficulty x round, colour = greedy test accuracy (the final model as the last column);
          the difficulties each round practised are outlined
frontier: the largest d with every difficulty 1..d solved (>= threshold) against cumulative
          training tokens and cumulative FLOPs
"""

from __future__ import annotations

from pathlib import Path

from selfplay.engine import artifacts
from selfplay.plots import pyplot
from selfplay.views.run import compact_accuracy

LEGEND = (
    "probe frontier: the largest d with every difficulty 1..d at >= {t:g} greedy accuracy on the "
    "validation split, for the model the round starts from; practised: the difficulties it "
    "labelled; labels correct: its labels' accuracy before the filter; kept: labels trained on, "
    "of those made; test frontier and test %: the round's model on the test split; train tok, "
    "gen tok and sec: the stage's own"
)


def read_final(run_dir: Path) -> dict | None:
    """``final.json`` (the last model on every evaluation difficulty), None before the run ends."""
    path = Path(run_dir) / "final.json"
    return artifacts.read_json(path) if path.exists() else None


def accuracy_of(row: dict) -> dict[int, float]:
    """A stage's greedy test accuracy per difficulty (the ``all`` mean left out)."""
    return {int(d): a for d, a in row["eval"]["accuracy"].items() if d != "all"}


def difficulties(rows: list[dict], final: dict | None = None) -> list[int]:
    """Every difficulty any stage (or the final evaluation) measured, in order."""
    out = {d for r in rows for d in accuracy_of(r)}
    return sorted(out | (set(accuracy_of(final)) if final else set()))


def final_line(final: dict, diffs: list[int]) -> str:
    """One line on ``final.json``: why the climb stopped and what the last model solves."""
    cpu = final.get("cpu_seconds")
    return (
        f"final ({final['model']}): stopped: {final['stop']}; test frontier "
        f"{final['eval']['solved']}; test % by digits {diffs[0]}..{diffs[-1]}: "
        f"{compact_accuracy(accuracy_of(final), diffs).strip()}"
        + (f"; {cpu:.0f} CPU-s" if cpu is not None else "")
    )


# ------------------------------------------------------------------------------------------------
# Figures (matplotlib, Agg)


def heatmap_figure(rows: list[dict], final: dict | None = None):
    """Difficulty (rows) x round (columns), colour = greedy test accuracy; grey: not measured
    (a round evaluates only up to its longest practised difficulty + ``probe_ahead``)."""
    import numpy as np

    plt = pyplot()
    diffs = difficulties(rows, final)
    stages = [(str(r["iteration"]), accuracy_of(r), r.get("frontier", {})) for r in rows]
    if final:
        stages.append(("final", accuracy_of(final), {}))
    grid = np.full((len(diffs), len(stages)), np.nan)
    for j, (_, acc, _) in enumerate(stages):
        for i, d in enumerate(diffs):
            if d in acc:
                grid[i, j] = acc[d]
    fig, ax = plt.subplots(
        figsize=(min(12, 2.5 + 0.45 * len(stages)), min(9, 1.6 + 0.3 * len(diffs)))
    )
    cmap = plt.get_cmap("viridis").with_extremes(bad="#e4e4e4")
    im = ax.imshow(grid, origin="lower", aspect="auto", cmap=cmap, vmin=0, vmax=1)
    if grid.size <= 600:  # numbers stay legible up to ~30 x 20 cells
        for (i, j), v in np.ndenumerate(grid):
            if not np.isnan(v):
                ax.text(j, i, f"{v:.2f}".replace("0.", "."), ha="center", va="center",
                        fontsize=7, color="black" if v > 0.6 else "white")  # fmt: skip
    for j, (_, _, fr) in enumerate(stages):
        for d in fr.get("practice") or []:
            if d in diffs:  # the difficulties this round labelled and trained on
                i = diffs.index(d)
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="red", lw=1.5))
    ax.set_xticks(range(len(stages)), [s[0] for s in stages])
    ax.set_yticks(range(len(diffs)), [str(d) for d in diffs])
    ax.set_xlabel("round (0 = seed model; red box: practised that round)")
    ax.set_ylabel("difficulty (digits)")
    ax.set_title("Greedy test accuracy by difficulty after each round", fontsize=11)
    fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
    return fig


def frontier_figure(rows: list[dict], threshold: float, final: dict | None = None):
    """The largest difficulty solved (every 1..d at >= ``threshold``) against cumulative training
    tokens (left) and cumulative FLOPs (right): on the test split after each stage, and on the
    validation split as the next round's probe measured it."""
    from matplotlib.ticker import MaxNLocator

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    test = [r["eval"].get("solved") for r in rows]
    # Round k's probe measures the model of stage k-1, at stage k-1's cumulative spend.
    probe = [r.get("frontier", {}).get("probe_solved") for r in rows[1:]]
    top_u = rows[0].get("frontier", {}).get("trained_max") if rows else None
    for ax, key, xlabel in (
        (axes[0], "train_tokens", "cumulative training tokens"),
        (axes[1], "flops", "cumulative FLOPs"),  # 6N per trained token + 2N per generated
    ):
        xs = [r["cumulative"][key] for r in rows]
        ax.plot(xs, test, marker="o", linewidth=1.6, label="test split, after the stage")
        if probe:
            ax.plot(xs[: len(probe)], probe, marker="s", markersize=5, linestyle="--",
                    linewidth=1.2, label="validation probe of the next round")  # fmt: skip
        if final and xs:
            ax.plot([xs[-1]], [final["eval"]["solved"]], marker="*", markersize=13,
                    linestyle="", label="final model, every test difficulty")  # fmt: skip
        if top_u is not None:
            ax.axhline(top_u, color="grey", linestyle=":", linewidth=1.2, label="U's longest")
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[0].set_ylabel(f"largest d with 1..d at >= {threshold:g}")
    axes[0].legend(fontsize=8)
    fig.suptitle("Frontier against training compute", fontsize=11)
    return fig


def write_figures(rows: list[dict], threshold: float, final: dict | None, base: Path) -> list[Path]:
    """``<base>_heatmap.png`` and ``<base>_frontier.png``; their paths. Small files for a results
    folder: 100 dpi, a 256-colour palette (a 16-round x 24-digit heatmap is ~40 KB)."""
    import io

    from PIL import Image

    plt = pyplot()
    out = []
    for name, fig in (
        ("heatmap", heatmap_figure(rows, final)),
        ("frontier", frontier_figure(rows, threshold, final)),
    ):
        path = base.with_name(f"{base.name}_{name}.png")
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=100)
        plt.close(fig)
        Image.open(buf).convert("RGB").quantize(256).save(path, format="PNG", optimize=True)
        out.append(path)
    return out
