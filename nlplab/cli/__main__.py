"""`python -m nlplab.cli`: the `nlplab` command."""

import sys

from nlplab.cli import main

sys.exit(main())
