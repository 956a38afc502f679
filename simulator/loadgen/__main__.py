"""``python -m simulator.loadgen [OPTIONS]``: ``posterm host load`` without the ``posterm`` entry point."""

import sys

from simulator.loadgen.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
