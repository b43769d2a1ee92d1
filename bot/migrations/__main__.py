"""`python -m bot.migrations upgrade|downgrade|current|revision -m MSG` (see bot/migrations/__init__.py)."""

import sys

from bot.migrations import main

sys.exit(main())
