"""``python run.py`` = ``distillgrasp run``: see ``distillgrasp/run.py``."""

import sys

from distillgrasp.run import main

if __name__ == "__main__":
    sys.exit(main())
