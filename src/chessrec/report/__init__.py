"""Deciding when further refinement stops paying off, from DVC's versioned experiments.

``experiments`` reads ``dvc exp show --json``; ``pareto`` and ``curves`` analyse the table;
``stopping`` applies the configured stopping rule; ``render`` writes ``report.md`` and plots.
"""

from chessrec.report.cli import register

__all__ = ["register"]
