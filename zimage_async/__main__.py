"""``python -m zimage_async``: the ``zimage`` command line."""

from zimage_async._cli import main

raise SystemExit(main())
