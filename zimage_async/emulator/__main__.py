"""``python -m zimage_async.emulator``: run the emulator until Ctrl-C or SIGTERM."""

from zimage_async.emulator._cli import main

raise SystemExit(main())
