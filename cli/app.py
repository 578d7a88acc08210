"""Entry point of the ``embstore`` console script: the group with every command registered."""

from . import change_commands, eval_commands, explore_commands, index_commands, query_commands, store_commands  # noqa: F401  (registers the commands)
from .main import cli


def main() -> None:
    cli(prog_name="embstore")


if __name__ == "__main__":
    main()
