"""The teacher's one error type."""

from __future__ import annotations

from ..errors import RfaiError


class TeacherError(RfaiError):
    """The teacher could not be built or did not answer (after retries): one line, exit 1."""
