"""The figure and the data of docs/results.md, from a grid's run directories and, to read them against, the A2C
runs that rl-baselines3-zoo published with its trained agents (their Monitor files).

    python docs/results/make_figures.py --grid runs/reproduce-cpu-small --zoo PATH/TO/rl-trained-agents

copies the grid's finished cells to docs/results/cpu-small/ without checkpoints (``galakit.grids.export_cells``:
a cell there is replaced, the others stay, so cells run in different sessions add up; that folder's
results.csv and results.md are the table), then draws docs/results/cpu-small.png from that folder
(``galakit.views.plot_grid``). With ``--zoo`` (a clone of github.com/DLR-RM/rl-trained-agents) it also writes
sb3-zoo-a2c.csv: the zoo's running 100-game mean at every 10th game of the six paper games. Without, the
figure reads that file. It prints the frames at which each zoo curve first reached the grid's thresholds
(``galakit.grids.first_reach``: from the full curve with ``--zoo``, from every 10th game without). With no
``--grid`` it only redraws.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import galakit  # noqa: F401  (before torch and matplotlib: the thread settings)
from galakit.grids import ANCHORS, PAPER_GAMES, THRESHOLDS, export_cells, first_reach
from galakit.views.results import monitor_curve, plot_grid

HERE = Path(__file__).parent
ZOO_CSV = HERE / "sb3-zoo-a2c.csv"
ZOO_LABEL = "rl-baselines3-zoo A2C (1 × 16, seed 3504351757)"


def zoo_curves(zoo: Path | None) -> dict[str, tuple[list, list]]:
    """Per paper game, (frames, mean raw return of the last 100 games): from the zoo's Monitor files (and then
    written to the CSV), or from the CSV."""
    if zoo is None:
        curves: dict[str, tuple[list, list]] = {}
        with ZOO_CSV.open() as f:
            for row in csv.DictReader(f):
                frames, scores = curves.setdefault(row["game"], ([], []))
                frames.append(float(row["frames"]))
                scores.append(float(row["mean_return_100"]))
        return curves
    curves = {}
    for game in PAPER_GAMES:
        folder = zoo / "a2c" / f"{game}NoFrameskip-v4_1"
        if folder.is_dir():
            frames, _, scores = monitor_curve(folder)
            curves[game] = (frames, scores)
            print_reach(f"zoo {game} (full curve)", game, frames, scores)
    with ZOO_CSV.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["game", "frames", "mean_return_100"])
        for game, (frames, scores) in curves.items():
            for i in [*range(0, len(frames) - 1, 10), len(frames) - 1]:
                out.writerow([game, int(frames[i]), round(float(scores[i]), 2)])
    return curves


def print_reach(name: str, game: str, frames, scores) -> None:
    reach = first_reach(frames, scores, THRESHOLDS.get(game, ()))
    print(f"{name}: " + ", ".join(f"{t:g} at {'-' if f is None else f'{f / 1e6:.2f}M'}" for t, f in reach.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", type=Path, help="a grid's --out folder, whose finished cells to copy here")
    parser.add_argument("--zoo", type=Path, help="a clone of DLR-RM/rl-trained-agents")
    parser.add_argument("--name", default="cpu-small", help="the folder and figure's name in docs/results/")
    args = parser.parse_args()
    kept = HERE / args.name
    if args.grid is not None:
        print("copied", ", ".join(export_cells(args.grid, kept)) or "no finished cell", "to", kept)
    curves = zoo_curves(args.zoo)
    if args.zoo is None:
        for game, (frames, scores) in curves.items():
            print_reach(f"zoo {game} (every 10th game)", game, frames, scores)
    fig = plot_grid(kept, anchors=ANCHORS["PPO paper, A2C (Schulman et al. 2017, Table 6)"],
                    references={game: {ZOO_LABEL: curve} for game, curve in curves.items()})
    fig.savefig(HERE / f"{args.name}.png", dpi=90)
    print("wrote", HERE / f"{args.name}.png")


if __name__ == "__main__":
    main()
