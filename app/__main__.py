"""`python -m app` runs the `airlock` command."""

from app.cli import main

main()
