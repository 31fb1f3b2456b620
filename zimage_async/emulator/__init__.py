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
from ._directives import TASK_ERROR_MESSAGES as _TASK_ERROR_MESSAGES
from ._faults import FaultKind, FaultPlan, FaultRecord, FaultRule, FaultScript
from ._ledger import LedgerEntry
from ._records import RequestRecord
from ._server import DEFAULT_API_KEY as _DEFAULT_API_KEY
from ._server import Emulator
from ._sizes import RATIO_SIZES as _RATIO_SIZES

# Bound here, not only imported, so that the API reference shows each constant's own
# comment below: autodoc reads it from this module, and would else show a string with
# the docstring of str itself and a mapping with none.

#: The API key an :class:`Emulator` accepts unless given ``api_keys``.
DEFAULT_API_KEY = _DEFAULT_API_KEY
#: Pixels (width, height) the emulator renders for each documented aspect ratio.
RATIO_SIZES = _RATIO_SIZES
#: A sentence for each documented task error code, the message of a task failed with it.
TASK_ERROR_MESSAGES = _TASK_ERROR_MESSAGES

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
    "FaultScript",
    "LedgerEntry",
    "ManualClock",
    "RequestRecord",
    "SystemClock",
    "main",
    "serve",
]
