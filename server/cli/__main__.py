"""`python -m server.cli ...` runs the `deskflow` command."""

import sys

from server.cli import main

sys.exit(main())
