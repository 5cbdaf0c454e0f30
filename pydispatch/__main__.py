"""`python -m pydispatch`: the `pydispatch` command."""

import sys

from .cli import main

sys.exit(main())
