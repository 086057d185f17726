"""`python -m nlplab` (and `torchrun -m nlplab`): the same command as `nlplab`."""

import sys

from nlplab.cli import main

sys.exit(main())
