"""demo-tool: prints its version (and, with --env, the environment it runs in)."""

import sys

__version__ = "1.2.0"


def main() -> None:
    print(f"demo-tool {__version__}")
    if "--env" in sys.argv[1:]:
        print(sys.prefix)
