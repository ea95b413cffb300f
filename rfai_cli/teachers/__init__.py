"""Teacher providers: a local MLX model, any OpenAI-compatible endpoint, or Anthropic's Messages API.

Each writes reference solutions and judges code on the rubric; answers are cached on disk.
"""

from .build import build_teacher
from .errors import TeacherError
from .teacher import JudgeItem, Teacher, TeacherAnswer, TeacherVerdict

__all__ = ["JudgeItem", "Teacher", "TeacherAnswer", "TeacherError", "TeacherVerdict", "build_teacher"]
