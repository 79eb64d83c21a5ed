"""``python -m streams`` is the ``citygrid`` command."""

from streams.cli import main

main()
