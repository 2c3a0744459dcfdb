"""Running a piece of a test in a forked child: code that could end the process (plugin
code calling ``os._exit`` that benchinit failed to refuse) ends the child, and the test
fails saying so, instead of ending pytest; with a memory limit, code that would allocate
without bound (a huge number built into a tuple) fails there with MemoryError, instead of
calling the out-of-memory killer onto a shared machine."""

from __future__ import annotations

import json
import os
import resource
from collections.abc import Callable
from typing import Any

# the real os._exit, taken before any guard could replace it: the child must end here even
# if a broken guard were left open
_REAL_EXIT = os._exit


def in_child(fn: Callable[[], Any], *, memory: int | None = None) -> Any:
    """What ``fn`` returns, computed in a forked child (or the error it raised, as text).
    ``memory``: bytes the child may map beyond what it holds when forked."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: answer through the pipe, then end for real
        os.close(read)
        try:
            if memory is not None:
                with open("/proc/self/statm") as statm:
                    held = int(statm.read().split()[0]) * resource.getpagesize()
                resource.setrlimit(resource.RLIMIT_AS, (held + memory, held + memory))
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
