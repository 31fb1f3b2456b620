"""An offline emulator of the Z-Image Turbo task API, for tests, demos and benchmarks.

It serves the documented API (create a task, get a task) on a loopback port and the
result images from a second loopback "origin", with a controllable clock, prompt
directives (``[[fail:CODE]]``, ``[[duration:S]]``), a fault plan for resilience tests,
callbacks, and inspection of everything it received and billed.

Example::

    from zimage_async.emulator import Emulator

    async with Emulator(task_duration=0.05) as emulator:
        print(emulator.base_url, emulator.api_key)

It is written independently of the client: nothing here imports ``zimage_async``'s
client modules. Pillow (the ``images`` extra) is optional.
"""

from ._callbacks import CallbackAttempt
from ._cli import main, serve
from ._clock import Clock, ManualClock, SystemClock
from ._directives import TASK_ERROR_MESSAGES
from ._faults import FaultKind, FaultPlan, FaultRecord, FaultRule
from ._ledger import LedgerEntry
from ._records import RequestRecord
from ._server import DEFAULT_API_KEY, Emulator
from ._sizes import RATIO_SIZES

__all__ = [
    "DEFAULT_API_KEY",
    "RATIO_SIZES",
    "TASK_ERROR_MESSAGES",
    "CallbackAttempt",
    "Clock",
    "Emulator",
    "FaultKind",
    "FaultPlan",
    "FaultRecord",
    "FaultRule",
    "LedgerEntry",
    "ManualClock",
    "RequestRecord",
    "SystemClock",
    "main",
    "serve",
]
