"""One progress display for every long call.

On a terminal it is a tqdm bar; in Jupyter or Colab, tqdm's notebook widget;
redirected to a file or a CI log, plain lines (no carriage returns or ANSI
codes) every ``LINE_EVERY_S`` seconds and at the end; with ``verbose=0``,
nothing. With ``verbose="auto"`` the display appears only once the work has
lasted ``AFTER_S`` seconds, so short calls stay silent and long ones never
do.
"""

from __future__ import annotations

import sys
import time
from typing import Optional, Union

__all__ = ["Progress", "AFTER_S"]

AFTER_S = 2.0  # verbose="auto": show progress once a call has run this long
LINE_EVERY_S = 10.0  # plain-line mode: one line this often


def _in_notebook() -> bool:
    """Inside a Jupyter or Colab kernel (not merely with ipykernel imported,
    as a test runner that executes notebooks has it)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return getattr(shell, "kernel", None) is not None


def _interactive(stream) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)()) or _in_notebook()


class Progress:
    """Progress over ``total`` units of work.

    Args:
        total: units of work in all (None: unknown).
        unit: what a unit is ("path rows", "batches").
        verbose: 0, 1, or "auto" (show once the work has lasted AFTER_S).
        desc: a short label, e.g. "conductance" or "round 2/4".
        stream: where to write (default sys.stderr).
        initial: units already done before this call (a resumed run).
    """

    def __init__(self, total: Optional[int], unit: str, verbose: Union[int, str],
                 desc: str = "", stream=None, initial: int = 0):
        self.total, self.unit, self.verbose, self.desc = total, unit, verbose, desc
        self.stream = stream if stream is not None else sys.stderr
        self.start = time.perf_counter()
        self.done = self.initial = initial
        self._bar = None
        self._last_line = None
        self._shown = verbose == 1

    def update(self, n: int, **postfix):
        """Adds ``n`` units done; ``postfix`` values are shown beside the bar."""
        self.done += n
        if self.verbose == 0:
            return
        now = time.perf_counter()
        if not self._shown:
            if now - self.start < AFTER_S:
                return
            self._shown = True
        if _interactive(self.stream):
            fresh = self._bar is None
            # A bar that appears late starts with all the work done so far.
            self._tqdm(postfix).update(self.done - self.initial if fresh else n)
        elif self._last_line is None or now - self._last_line >= LINE_EVERY_S:
            self._line(now, postfix)

    def close(self, **postfix):
        if self._bar is not None:
            if postfix:
                self._bar.set_postfix(postfix, refresh=False)
            self._bar.close()
        elif self._shown and self.verbose != 0:
            self._line(time.perf_counter(), postfix, final=True)

    def _tqdm(self, postfix):
        if self._bar is None:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=self.total, unit=f" {self.unit}", desc=self.desc or None,
                             file=self.stream, leave=True, dynamic_ncols=True,
                             initial=self.initial)
        if postfix:
            self._bar.set_postfix(postfix, refresh=False)
        return self._bar

    def _line(self, now: float, postfix: dict, final: bool = False):
        self._last_line = now
        elapsed = now - self.start
        head = f"{self.desc}: " if self.desc else ""
        if self.total:
            share = self.done / self.total
            left = "" if final or not share else f", about {elapsed * (1 - share) / share:.0f} s left"
            text = f"{head}{self.done}/{self.total} {self.unit} ({100 * share:.0f}%), {elapsed:.0f} s{left}"
        else:
            text = f"{head}{self.done} {self.unit}, {elapsed:.0f} s"
        extra = "".join(f", {k} {v}" for k, v in postfix.items())
        print(text + extra + (" - done" if final else ""), file=self.stream, flush=True)
