"""A cheap repr for hyperframe's frames, installed when this module is imported (by the gRPC surface).

h2 hands `repr(frame)` of every frame it receives to its trace logger as an argument
(`H2Connection._receive_frame`), so the repr is built whether or not anything logs it, and trikv's h2
connections use h2's no-op logger. Measured with `python -m trikv.tools.bench_surface_cpu --surface grpc`:
hyperframe's repr (flags, body and a hex dump of the first payload bytes) was ~11 % of a unary call's CPU.
The replacement still names the frame type and stream, which is all a log line of ours would use.
"""

from __future__ import annotations

import hyperframe.frame


def _frame_repr(frame: hyperframe.frame.Frame) -> str:
    return f"{type(frame).__name__}(stream_id={frame.stream_id})"


hyperframe.frame.Frame.__repr__ = _frame_repr  # type: ignore[method-assign]

__all__: list[str] = []
