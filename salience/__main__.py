"""``python -m salience``: the ``salience`` command."""

import sys

from salience.service.cli import main

sys.exit(main())
