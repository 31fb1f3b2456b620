"""One client measurement in a fresh process: ``python -m benchmarks._worker W V PARAMS``.

W is the workload, V the variant (``sdk``, ``raw`` ...), PARAMS its JSON parameters. The
result is printed as one JSON line on stdout.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

__all__ = ["main"]

Client = Callable[[dict[str, Any]], Coroutine[Any, Any, dict[str, Any]]]


def _clients(workload: str) -> Mapping[str, Client]:
    # Imported on demand, so a raw client's process loads only what its workload needs.
    if workload == "overhead":
        from ._overhead import CLIENTS
    elif workload == "scale":
        from ._scale import CLIENTS
    elif workload == "polling":
        from ._polling import CLIENTS
    elif workload == "downloads":
        from ._downloads import CLIENTS
    elif workload == "calls":
        from ._calls import CLIENTS
    else:
        raise SystemExit(f"unknown workload {workload!r}")
    return CLIENTS


def main(argv: list[str]) -> int:
    """Run the client named by ``argv`` and print its result as JSON."""
    workload, variant, params = argv
    client = _clients(workload)[variant]
    result = asyncio.run(client(json.loads(params)))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
