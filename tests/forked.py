"""Running a piece of a test in a forked child: code that could end the process (plugin
code calling ``os._exit`` that benchinit failed to refuse) ends the child, and the test
fails saying so, instead of ending pytest."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

# the real os._exit, taken before any guard could replace it: the child must end here even
# if a broken guard were left open
_REAL_EXIT = os._exit


def in_child(fn: Callable[[], Any]) -> Any:
    """What ``fn`` returns, computed in a forked child (or the error it raised, as text)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer through the pipe, then end for real
        os.close(read)
        try:
            answer = {"value": fn()}
        except BaseException as exc:
            answer = {"raised": f"{type(exc).__name__}: {exc}"}
        with os.fdopen(write, "w") as f:
            f.write(json.dumps(answer, default=str))
        _REAL_EXIT(0)
    os.close(write)
    with os.fdopen(read) as f:
        text = f.read()
    _, status = os.waitpid(pid, 0)
    assert text, (
        f"the process ended (status {os.waitstatus_to_exitcode(status)}) without an answer: "
        "an exit in plugin code was not refused"
    )
    answer = json.loads(text)
    assert "raised" not in answer, answer["raised"]
    return answer["value"]
