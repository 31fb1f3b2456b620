"""The calls workload compares like with like: both sides send the same requests per call.

Each kind of call is counted at the emulator (its ``/counts``), per call, for the SDK and
for the raw loop; a kind where they differ measures something else than its name (an
image stream served from memory is no stream), and the table says so.
"""

from __future__ import annotations

import dataclasses

from benchmarks._calls import KINDS, run
from benchmarks._common import Options


def test_the_sdk_and_the_raw_loop_send_the_same_requests_for_each_kind() -> None:
    """A quick run: per kind, the requests per call of the SDK are the raw loop's, not none."""
    options = dataclasses.replace(Options.quick(), calls_each=20)
    (table,) = run(options)
    column = list(table.headers).index("requests/call")
    rows = {row[0]: row for row in table.rows}
    assert sorted(rows) == sorted(KINDS)
    for kind, row in rows.items():
        sdk, _, raw = row[column].partition(" | ")
        assert sdk == raw, (kind, row[column])
        assert set(sdk.split("/")) != {"0.00"}, (kind, row[column])
    assert rows["image stream"][column] == "0.00/0.00/1.00 | 0.00/0.00/1.00"
    assert any("the same requests per call" in note for note in table.notes)
