"""A rich Progress whose detail fits any terminal: the bar, the counts and the ETA on one line, each
task's `detail` field on the next, cut to the width (imported only when a terminal shows it)."""

from __future__ import annotations

from rich.progress import Progress
from rich.text import Text


class ProgressWithDetail(Progress):
    def get_renderables(self):
        yield self.make_tasks_table(self.tasks)
        for task in self.tasks:
            yield Text(task.fields.get("detail", ""), no_wrap=True, overflow="ellipsis")
