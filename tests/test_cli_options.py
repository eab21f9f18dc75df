"""The command line builds its dataclasses from the options of the same name."""

from __future__ import annotations

import dataclasses

from salience.evals.grid import Grid
from salience.model.fit.fitting import FitConfig
from salience.service.cli import build_parser
from salience.service.cli.common import from_options


def test_a_grid_takes_every_eval_run_option_of_its_fields() -> None:
    args = build_parser().parse_args(
        ["eval", "run", "--items", "7", "--lengths", "0,512", "--methods", "none,xml",
         "--seed", "3", "--samples", "2", "--temperature", "0.5", "--design", "rotated"]
    )  # fmt: skip
    grid = from_options(Grid, args)
    assert (grid.items, list(grid.lengths), list(grid.methods)) == (7, [0, 512], ["none", "xml"])
    assert (grid.seed, grid.samples, grid.temperature, grid.design) == (3, 2, 0.5, "rotated")
    # every field of the grid is an option of eval run: none is left at a default silently
    assert {f.name for f in dataclasses.fields(Grid)} <= set(vars(args))


def test_a_fit_config_takes_the_options_and_what_is_given_over_them() -> None:
    args = build_parser().parse_args(
        ["model", "fit", "--steps", "12", "--lr", "0.2", "--distance", "0,16"]
    )
    config = from_options(FitConfig, args, distance_knots=(0, 16))
    assert (config.steps, config.lr, config.distance_knots) == (12, 0.2, (0, 16))
    # a field with no option of its name keeps the dataclass's default
    assert config.max_beta == FitConfig().max_beta and not hasattr(args, "max_beta")
