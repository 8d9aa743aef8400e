"""An evaluation's results: per-sequence scores, means, still-period totals, and the table."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from server.evaluation.scoring import Score

__all__ = ["Report", "SequenceReport", "format_table"]


@dataclass
class SequenceReport:
    """All methods' scores on one sequence."""

    name: str
    synthetic: bool
    frames: int
    scores: dict[str, Score] = field(default_factory=dict)


def _row(s: Score) -> dict[str, float]:
    pp, pr, pf = s.pixel
    fp_, fr, ff = s.frame
    return {
        "pixel_precision": pp,
        "pixel_recall": pr,
        "pixel_f": pf,
        "frame_precision": fp_,
        "frame_recall": fr,
        "frame_f1": ff,
        "false_alarms": float(s.false_alarms),
        "negative_frames": float(s.negatives),
        "ms_per_frame": s.ms_per_frame,
    }


@dataclass
class Report:
    """The outcome of one evaluation run."""

    methods: list[str]
    sequences: list[SequenceReport] = field(default_factory=list)

    def real(self) -> list[SequenceReport]:
        """Reports of recorded (not generated) sequences."""
        return [s for s in self.sequences if not s.synthetic]

    def mean(self, method: str) -> dict[str, float]:
        """Unweighted mean over the recorded sequences of each per-sequence metric (CDnet's
        convention), with false alarms and negatives summed."""
        rows = [_row(s.scores[method]) for s in self.real()]
        if not rows:
            return {}
        out = {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}
        out["false_alarms"] = sum(r["false_alarms"] for r in rows)
        out["negative_frames"] = sum(r["negative_frames"] for r in rows)
        return out

    def still(self, method: str) -> Score:
        """Counts summed over the generated sequences (still periods and what follows)."""
        total = Score()
        for s in self.sequences:
            if s.synthetic:
                total.merge(s.scores[method])
        return total

    def f_ratio(self, method: str, reference: str = "mog2") -> float | None:
        """Mean pixel F of ``method`` divided by ``reference``'s, when both ran."""
        if reference not in self.methods or method not in self.methods:
            return None
        ref = self.mean(reference).get("pixel_f", 0.0)
        return self.mean(method).get("pixel_f", 0.0) / ref if ref > 0 else None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly summary."""
        still: dict[str, Any] = {}
        for m in self.methods:
            s = self.still(m)
            rate = s.still_alarms / s.still_frames if s.still_frames else 0.0
            still[m] = {
                "still_frames": s.still_frames,
                "still_false_alarms": s.still_alarms,
                "still_false_alarm_rate": rate,
            }
        return {
            "methods": self.methods,
            "sequences": [
                {
                    "name": s.name,
                    "synthetic": s.synthetic,
                    "frames": s.frames,
                    "scores": {m: _row(sc) | _still(sc) for m, sc in s.scores.items()},
                }
                for s in self.sequences
            ],
            "mean": {m: self.mean(m) for m in self.methods},
            "still": still,
            "f_ratio_vs_mog2": {m: self.f_ratio(m) for m in self.methods},
        }


def _still(s: Score) -> dict[str, float]:
    return {"still_frames": float(s.still_frames), "still_false_alarms": float(s.still_alarms)}


_HEAD = (
    f"{'sequence':<22} {'method':<9} {'pixP':>5} {'pixR':>5} {'pixF':>5} "
    f"{'frmP':>5} {'frmR':>5} {'frmF1':>5} {'FA/neg':>9} {'ms/fr':>6}"
)


def _line(name: str, method: str, r: dict[str, float]) -> str:
    fa = f"{int(r['false_alarms'])}/{int(r['negative_frames'])}"
    return (
        f"{name[:22]:<22} {method:<9} {r['pixel_precision']:5.3f} {r['pixel_recall']:5.3f} "
        f"{r['pixel_f']:5.3f} {r['frame_precision']:5.3f} {r['frame_recall']:5.3f} "
        f"{r['frame_f1']:5.3f} {fa:>9} {r['ms_per_frame']:6.2f}"
    )


def format_table(report: Report) -> str:
    """The human-readable table: one line per sequence and method, then the means, the
    still-period false alarms and the F ratio against MOG2."""
    out = [_HEAD, "-" * len(_HEAD)]
    for s in report.sequences:
        for m in report.methods:
            out.append(_line(s.name, m, _row(s.scores[m])))
    out.append("-" * len(_HEAD))
    n_real = len(report.real())
    for m in report.methods:
        mean = report.mean(m)
        if mean:
            out.append(_line(f"MEAN of {n_real} recorded", m, mean))
    if any(s.synthetic for s in report.sequences):
        out.append("")
        for m in report.methods:
            st = report.still(m)
            rate = 100.0 * st.still_alarms / st.still_frames if st.still_frames else 0.0
            out.append(
                f"still periods  {m:<9} false-alarm frames {st.still_alarms}/{st.still_frames}"
                f" = {rate:.2f} %"
            )
    out.append("")
    for m in report.methods:
        ratio = report.f_ratio(m)
        if ratio is not None and m != "mog2":
            out.append(f"mean pixel F ratio {m} / mog2 = {ratio:.2f}")
    return "\n".join(out)
