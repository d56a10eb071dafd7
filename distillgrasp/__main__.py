import sys

from distillgrasp.cli import main

sys.exit(main())
