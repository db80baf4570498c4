"""User-facing error types: a user mistake becomes one clear line and exit code 2, never a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix (bad params, missing file, unreachable server). Printed as one line, exit 2."""

    exit_code = 2


class ConfigError(UserError):
    """One or more problems in params.yaml, each naming its key path; all are reported at once."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))

    def __str__(self) -> str:
        return "\n".join(self.problems)


def error_lines(exc: UserError) -> list[str]:
    """The `error: ...` lines a user error prints: one per params problem, else one."""
    problems = exc.problems if isinstance(exc, ConfigError) else [str(exc)]
    return [f"error: {problem}" for problem in problems]
