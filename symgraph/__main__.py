"""``python -m symgraph``: the command line (see :mod:`symgraph.cli`)."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
