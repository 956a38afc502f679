"""``python -m simulator.host serve ...``: the host's commands without the ``posterm`` entry point."""

import sys

from simulator.host.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
