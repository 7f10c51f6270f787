"""What the demo counted, and the summary table it prints."""

from __future__ import annotations

from dataclasses import dataclass, field

from ._shop import STAGES

__all__ = ["Report", "StageCounts"]


@dataclass
class StageCounts:
    #: Orders this stage handled successfully (a set: redelivered duplicates count once).
    processed: set[str] = field(default_factory=set)
    #: Failed attempts that were nacked for another try.
    retried: int = 0
    #: Orders whose message for this stage was read back from the dead-letter queue.
    dead_lettered: set[str] = field(default_factory=set)


@dataclass
class Report:
    url: str
    dead_letter_url: str
    placed: list[str]
    stages: dict[str, StageCounts] = field(default_factory=lambda: {s: StageCounts() for s in STAGES})
    shipped: set[str] = field(default_factory=set)
    elapsed: float = 0.0
    timed_out: bool = False

    @property
    def dead_lettered(self) -> set[str]:
        return set().union(*(counts.dead_lettered for counts in self.stages.values()))

    def finished(self) -> bool:
        return len(self.shipped | self.dead_lettered) >= len(self.placed)

    @property
    def reconciled(self) -> bool:
        """Every order either shipped or dead-lettered, exactly once, and each stage
        processed what the previous stage passed on minus what it dead-lettered."""
        shipped, dead = self.shipped, self.dead_lettered
        if shipped & dead or (shipped | dead) != set(self.placed):
            return False
        expected = set(self.placed)
        for stage in STAGES:
            counts = self.stages[stage]
            expected -= counts.dead_lettered
            if counts.processed != expected:
                return False
        return expected == shipped

    def table(self) -> str:
        rows = [f"{'stage':<16}{'processed':>10}{'retried':>9}{'dead-lettered':>15}"]
        rows.append("-" * len(rows[0]))
        for stage in STAGES:
            counts = self.stages[stage]
            rows.append(
                f"{stage:<16}{len(counts.processed):>10}{counts.retried:>9}{len(counts.dead_lettered):>15}"
            )
        total_retried = sum(c.retried for c in self.stages.values())
        rows.append("-" * len(rows[0]))
        rows.append(f"{'total':<16}{'':>10}{total_retried:>9}{len(self.dead_lettered):>15}")
        verdict = "reconciled" if self.reconciled else "NOT reconciled"
        if self.timed_out:
            verdict += " (timed out before the pipeline drained)"
        rows.append(
            f"orders: {len(self.placed)} placed, {len(self.shipped)} shipped, "
            f"{len(self.dead_lettered)} dead-lettered: {verdict}"
        )
        rows.append(f"elapsed: {self.elapsed:.2f} s on {self.url}")
        if self.dead_lettered:
            rows.append(
                f"the dead letters stay in {self.dead_letter_url}: see them with "
                f"cloudqueue dlq '{self.url}' or cloudqueue ui '{self.url}'"
            )
        return "\n".join(rows)
