"""`python -m tools.docs`: see tools/docs/__init__.py."""

import sys

from tools.docs import main

sys.exit(main())
