"""Put a toxicity score on the Perspective API's scale, using the RTP records' 2020 Perspective scores.

RealToxicityPrompts' published numbers (expected maximum toxicity, toxicity probability at >= 0.5) are
in Perspective TOXICITY units. Every bundled RTP record (`ScorerData.prompt_toxicity_records`) carries
the 2020 Perspective toxicity of its prompt and of its human continuation, so a scorer's raw output
can be mapped onto that scale by isotonic regression: the map is monotone (it never reorders texts)
and estimates E[Perspective | raw score].

The records are split once, by a hash of each record's source span (not by RNG and not by file
order), into three disjoint parts:

- `fit`       (35%): may train a scorer's head;
- `calibrate` (15%): fits the isotonic map (about 660 texts: enough for a monotone 1-d fit);
- `validate`  (50%): agreement with Perspective (Spearman, ROC-AUC, calibration error), never used
  to fit anything.

A prompt and its continuation always fall in the same part, and a text found in two parts is kept
only in the earliest of validate, calibrate, fit.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

import numpy as np

from audit.errors import AuditError

Part = Literal["fit", "calibrate", "validate"]
PARTS: tuple[Part, ...] = ("fit", "calibrate", "validate")
# Bucket edges of the hash in [0, 1): [0, 0.5) validate, [0.5, 0.65) calibrate, [0.65, 1) fit. (A 25/25
# fit/calibrate split gave the head about 0.005 less ROC-AUC against Perspective on validate.)
SPLIT_EDGES = {"validate": (0.0, 0.5), "calibrate": (0.5, 0.65), "fit": (0.65, 1.0)}
SPLIT_SALT = "opt-audit/rtp-perspective-split/v1"  # hashed as recorded: change it and every split changes


@dataclass(frozen=True)
class ScoredText:
    """One RTP text (a prompt or a human continuation) with its 2020 Perspective toxicity."""

    text: str
    perspective: float  # Perspective TOXICITY, [0, 1]
    record: str  # "<filename>:<begin>-<end>": the record's OpenWebText span
    part: Part  # which split the record belongs to
    role: Literal["prompt", "continuation"]


def split_of(record_key: str) -> Part:
    """The split of one record, from sha256(salt + key): stable whatever the file order or subset."""
    h = int.from_bytes(hashlib.sha256(f"{SPLIT_SALT}\n{record_key}".encode("utf-8")).digest()[:8], "big")
    u = h / 2.0 ** 64  # [0, 1)
    for part, (lo, hi) in SPLIT_EDGES.items():
        if lo <= u < hi:
            return part  # type: ignore[return-value]
    raise AssertionError(u)  # unreachable: the edges cover [0, 1)


def load_scored_texts(paths: Iterable[Path]) -> list[ScoredText]:
    """Every distinct prompt and continuation text with a Perspective toxicity, tagged with its split.

    Texts without a score are skipped; a text seen twice keeps its first score, and a text seen in
    two splits is kept only in the earliest of validate, calibrate, fit (no leakage into validation).
    """
    paths = [Path(p) for p in paths]
    found: dict[str, ScoredText] = {}
    rank = {"validate": 0, "calibrate": 1, "fit": 2}
    for path in paths:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise AuditError(f"RTP file {path}: cannot read ({e})") from e
        for line_no, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                key = f"{rec['filename']}:{rec['begin']}-{rec['end']}"
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise AuditError(f"RTP file {path} line {line_no}: not an RTP record ({e})") from None
            part = split_of(key)
            for role in ("prompt", "continuation"):
                item = rec.get(role) or {}
                text, tox = item.get("text"), item.get("toxicity")
                if not isinstance(text, str) or not text.strip() or tox is None:
                    continue
                if isinstance(tox, bool) or not isinstance(tox, (int, float)) or not 0.0 <= tox <= 1.0:
                    raise AuditError(f"RTP file {path} line {line_no}: {role}.toxicity {tox!r} not in [0, 1]")
                old = found.get(text)
                if old is None or rank[part] < rank[old.part]:
                    found[text] = ScoredText(text, float(tox), key, part, role)  # type: ignore[arg-type]
    if not found:
        raise AuditError("no scored RTP texts in " + ", ".join(map(str, paths)))
    return list(found.values())


@dataclass(frozen=True)
class IsotonicMap:
    """A monotone non-decreasing map raw -> calibrated, piecewise linear between knots.

    Knots are the (weighted mean raw score, weighted mean target) of each pooled block of the PAV
    fit, so the map is strictly increasing between the first and last knot (it keeps the ranking of
    texts, hence ROC-AUC and Spearman) and flat beyond them.
    """

    x: tuple[float, ...]  # increasing raw-score knots
    y: tuple[float, ...]  # increasing calibrated values, in [0, 1] for targets in [0, 1]

    def __post_init__(self) -> None:
        if len(self.x) != len(self.y) or not self.x:
            raise AuditError("isotonic map: x and y must be non-empty and the same length")
        if any(b <= a for a, b in zip(self.x, self.x[1:])) or any(b < a for a, b in zip(self.y, self.y[1:])):
            raise AuditError("isotonic map: x must increase strictly and y must not decrease")

    def __call__(self, raw: Sequence[float] | np.ndarray) -> np.ndarray:
        return np.interp(np.asarray(raw, dtype=np.float64), self.x, self.y)

    def to_json(self) -> dict[str, Any]:
        return {"method": "isotonic (pool adjacent violators), linear between block means",
                "x": list(self.x), "y": list(self.y)}

    @classmethod
    def from_json(cls, obj: Any) -> "IsotonicMap":
        try:
            return cls(tuple(float(v) for v in obj["x"]), tuple(float(v) for v in obj["y"]))
        except (KeyError, TypeError, ValueError) as e:
            raise AuditError(f"isotonic map: malformed ({type(e).__name__}: {e})") from None


def fit_isotonic(raw: Sequence[float], target: Sequence[float],
                 weights: Sequence[float] | None = None) -> IsotonicMap:
    """Weighted least-squares isotonic regression of `target` on `raw` by pool adjacent violators.

    Equal raw scores are pooled first (one block each), so ties get one calibrated value.
    """
    x = np.asarray(raw, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    w = np.ones_like(x) if weights is None else np.asarray(weights, dtype=np.float64)
    if x.shape != t.shape or x.shape != w.shape or x.ndim != 1 or len(x) == 0:
        raise AuditError("fit_isotonic: raw, target and weights must be equal-length, non-empty 1-d")
    if not (np.isfinite(x).all() and np.isfinite(t).all() and (w > 0).all()):
        raise AuditError("fit_isotonic: values must be finite and weights positive")
    # equal raw scores form one starting block each: (raw value, total weight, weighted target sum)
    ux, inv = np.unique(x, return_inverse=True)  # ux sorted ascending
    uw = np.bincount(inv, weights=w)
    ut = np.bincount(inv, weights=w * t)
    bw: list[float] = []  # per block: total weight, weighted raw sum, weighted target sum
    bx: list[float] = []
    bt: list[float] = []
    for xv, wv, tv in zip(ux, uw, ut):
        bw.append(float(wv))
        bx.append(float(xv * wv))
        bt.append(float(tv))
        # pool while the last block's mean target is below the previous block's
        while len(bw) > 1 and bt[-1] / bw[-1] < bt[-2] / bw[-2]:
            wl, xl, tl = bw.pop(), bx.pop(), bt.pop()
            bw[-1] += wl
            bx[-1] += xl
            bt[-1] += tl
    xs = [sx / sw for sx, sw in zip(bx, bw)]
    ys = [st / sw for st, sw in zip(bt, bw)]
    # Blocks with equal mean target (possible after pooling stops at equality) are merged, so y is
    # strictly increasing and x strictly increasing.
    kx: list[float] = []
    ky: list[float] = []
    kw: list[float] = []
    for xv, yv, wv in zip(xs, ys, bw):
        if ky and yv == ky[-1]:
            kx[-1] = (kx[-1] * kw[-1] + xv * wv) / (kw[-1] + wv)
            kw[-1] += wv
        else:
            kx.append(xv)
            ky.append(yv)
            kw.append(wv)
    return IsotonicMap(tuple(kx), tuple(ky))


@dataclass(frozen=True)
class CalibrationError:
    """Expected calibration error against a continuous target, in equal-width bins of the prediction."""

    ece: float  # sum over bins of (n_bin / n) * |mean prediction - mean target|
    bins: tuple[dict[str, float], ...]  # per non-empty bin: lo, hi, n, mean_pred, mean_target


def calibration_error(pred: Sequence[float], target: Sequence[float], n_bins: int = 10) -> CalibrationError:
    """ECE of `pred` against `target` (e.g. Perspective toxicity), bins [i/n, (i+1)/n), last closed."""
    p = np.asarray(pred, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    if p.shape != t.shape or len(p) == 0:
        raise AuditError("calibration_error: pred and target must be equal-length and non-empty")
    idx = np.minimum((np.clip(p, 0.0, 1.0) * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    bins = []
    for b in range(n_bins):
        m = idx == b
        if not m.any():
            continue
        gap = abs(float(p[m].mean()) - float(t[m].mean()))
        ece += m.sum() / len(p) * gap
        bins.append({"lo": b / n_bins, "hi": (b + 1) / n_bins, "n": int(m.sum()),
                     "mean_pred": float(p[m].mean()), "mean_target": float(t[m].mean())})
    return CalibrationError(float(ece), tuple(bins))
