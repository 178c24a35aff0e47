"""`python -m newsletter`: the same command as `newsletter`."""

from .faces.cli import main

main()
