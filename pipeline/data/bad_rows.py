"""What to do with a malformed input row: fail naming file and line, or skip it and count it."""
import dataclasses
from pathlib import Path
from typing import List, Literal

SAMPLE_SIZE = 5


class BadRowError(ValueError):
  """A row that does not hold what its format promises, with the file and 1-based line number."""

  def __init__(self, path: Path, line: int, problem: str):
    self.path = path
    self.line = line
    self.problem = problem
    super().__init__(f"{path}:{line}: {problem}")


@dataclasses.dataclass
class BadRows:
  """Applies the bad-row policy and keeps the skipped rows' count and a sample for the report."""
  policy: Literal["fail", "skip"] = "fail"
  count: int = 0
  sample: List[BadRowError] = dataclasses.field(default_factory=list)

  def reject(self, path: Path, line: int, problem: str) -> None:
    """Raises BadRowError under "fail"; under "skip" records the row and returns."""
    error = BadRowError(path, line, problem)
    if self.policy == "fail":
      raise error
    self.count += 1
    if len(self.sample) < SAMPLE_SIZE:
      self.sample.append(error)

  def summary(self) -> str:
    """One line per sampled row under a header with the total, or "" when nothing was skipped."""
    if not self.count:
      return ""
    lines = [f"skipped {self.count} bad row(s); first {len(self.sample)}:"]
    lines += [f"  {error}" for error in self.sample]
    return "\n".join(lines)
