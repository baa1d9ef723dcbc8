"""The errors torl raises on purpose, so that a caller can catch them by kind.

```python
from torl.errors import UserError

try:
    problems = load_problems("aime24", data_dir="data")
except UserError as e:      # bad data, a bad recipe, conflicting results, an unreadable report input...
    print(f"error: {e}")    # the message names the file, line, key or setting at fault
```

- `TorlError`: the base of every torl error.
- `UserError`: a problem with what the user asked for; the message says what to fix, so the `torl`
  command prints it as one line (no traceback).
  - `DataError`: a data file (training rows, a benchmark) is missing or malformed.
  - `ConfigError`: a bad setting, recipe key or override, or an unknown kind name.
  - `SandboxUnavailableError`: the sandbox asked for cannot run here (no Docker engine, no image...).
  - `EvalError` (`torl.eval`) and `ReportError` (`torl.view`) derive from `UserError` too.

Errors that also mean "a bad value" derive from `ValueError` as well, as they did before this module.
This module imports nothing: `import torl` stays light.
"""

from __future__ import annotations

__all__ = ["ConfigError", "DataError", "SandboxUnavailableError", "TorlError", "UserError"]


class TorlError(Exception):
    """The base of every error torl raises on purpose."""


class UserError(TorlError):
    """A problem with what the user asked for (data, settings, files, an unavailable backend): the
    message says what to fix; the `torl` command prints it as one line, without a traceback."""


class DataError(UserError, ValueError):
    """A data file could not be read: the message names the file, the line (or row) and the problem."""


class ConfigError(UserError, ValueError):
    """A bad setting, recipe key or override, or an unknown kind name (the message lists the valid ones)."""


class SandboxUnavailableError(UserError, RuntimeError):
    """The sandbox asked for cannot run here (no Docker engine, no sandbox image, no SDK)."""
