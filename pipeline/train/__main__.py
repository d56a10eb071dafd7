import sys

from pipeline.train import main

sys.exit(main())
