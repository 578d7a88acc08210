"""Entry point of the ``embstore`` console script."""

from .main import cli  # each command's module is imported when the command runs (main.COMMAND_MODULES)


def main() -> None:
    cli(prog_name="embstore")


if __name__ == "__main__":
    main()
