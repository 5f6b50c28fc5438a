"""Reading a trial's output: the bounded tail kept as an artifact, and metric lines.

SageMaker's convention: every line is matched against each metric definition's
regex, the first group is the value, every match is one step of that metric's
history and the last one is the final value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from amtune.tasks.runners.failures import TrialFailure
from amtune.tasks.runners.outcome import Report

MAX_OUTPUT = 1 << 20  # keep the last 1 MiB of a trial's output
MAX_LINE = 1 << 16  # a "line" longer than this is cut (protects the line buffer)
_LINE_END = re.compile(rb"\r\n|\r|\n")  # \r too: progress bars redraw with it


class MetricParser:
    """Matches output lines against the metric regexes and reports every match."""

    def __init__(self, regexes: Mapping[str, str], report: Report | None) -> None:
        self.patterns = {name: re.compile(rx) for name, rx in regexes.items()}
        for name, pattern in self.patterns.items():
            if pattern.groups != 1:  # more would read the wrong group, silently
                raise ValueError(f"metric {name!r}: regex {pattern.pattern!r} has "
                                 f"{pattern.groups} groups, not 1 (see check_objective)")
        self.report = report
        self.final: dict[str, float] = {}
        self.steps: dict[str, int] = {}

    def feed(self, line: str) -> None:
        for name, pattern in self.patterns.items():
            match = pattern.search(line)
            if match is None or match.group(1) is None:
                continue
            try:
                value = float(match.group(1))
            except ValueError:
                continue  # the regex caught something that is not a number: not a value
            step = self.steps.get(name, 0)
            self.steps[name] = step + 1
            self.final[name] = value
            if self.report is not None:
                try:
                    self.report(step, {name: value})
                except TrialFailure:
                    raise
                except Exception as exc:
                    raise TrialFailure(
                        "tracking_error", f"reporting metrics failed: {type(exc).__name__}: {exc}"
                    ) from exc


class OutputBuffer:
    """The tail of the output (bounded) and the line splitter."""

    def __init__(self) -> None:
        self.tail = bytearray()
        self.dropped = 0
        self.pending = b""

    def add(self, chunk: bytes) -> list[str]:
        self.tail += chunk
        if len(self.tail) > 2 * MAX_OUTPUT:
            cut = len(self.tail) - MAX_OUTPUT
            self.dropped += cut
            del self.tail[:cut]
        data = self.pending + chunk
        parts = _LINE_END.split(data)
        self.pending = parts.pop()
        if len(self.pending) > MAX_LINE:
            parts.append(self.pending)
            self.pending = b""
        return [p.decode("utf-8", "replace") for p in parts]

    def flush(self) -> list[str]:
        rest, self.pending = self.pending, b""
        return [rest.decode("utf-8", "replace")] if rest else []

    def text(self) -> str:
        tail = bytes(self.tail)
        dropped = self.dropped
        if len(tail) > MAX_OUTPUT:
            dropped += len(tail) - MAX_OUTPUT
            tail = tail[-MAX_OUTPUT:]
        text = tail.decode("utf-8", "replace")
        return f"[... {dropped} bytes of earlier output dropped ...]\n{text}" if dropped else text

    def last_line(self) -> str:
        lines = [ln for ln in self.text().splitlines() if ln.strip()]
        last = lines[-1].strip() if lines else "(no output)"
        return last if len(last) <= 300 else last[:297] + "..."
