"""demo-tool: prints its version, and which optional helpers it can see."""

import sys

__version__ = "1.2.0"


def main() -> None:
    if sys.argv[1:] == ["--version"]:
        print(f"demo-tool {__version__}")
        return
    try:
        import six
    except ImportError:
        print("six: none")
    else:
        print(f"six: {six.__version__}")
