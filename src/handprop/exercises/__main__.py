"""``python -m handprop.exercises list | grade NOTEBOOK_OR_FOLDER [--json] | leaderboard FOLDER``."""

import sys

from .autograder import main

if __name__ == "__main__":
    sys.exit(main())
