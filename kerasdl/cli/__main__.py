"""`python -m kerasdl.cli` runs the command line (used to start worker processes)."""

from kerasdl.cli import main

if __name__ == "__main__":
    main()
