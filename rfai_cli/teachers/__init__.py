"""Teacher providers: a local MLX model, any OpenAI-compatible endpoint, or Anthropic's Messages API.

Each writes reference solutions and judges code on the rubric; answers are cached on disk.
"""

from .build import build_teacher
from .errors import TeacherError
from .teacher import JudgeItem, JudgeVerdict, Teacher, TeacherAnswer

__all__ = ["JudgeItem", "JudgeVerdict", "Teacher", "TeacherAnswer", "TeacherError", "build_teacher"]
