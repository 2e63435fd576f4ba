"""How good is a toxicity scorer? Measured on bundled human-labelled data it never trained on.

- HateCheck (Röttger et al. 2021, ACL): 3,728 gold-labelled functional test cases in 29
  functionalities (negation, counter-speech, reclaimed slurs, spelling variants, ...). Accuracy at
  the 0.5 threshold, overall and per functionality with a Wilson 95% interval, so a report can say
  *where* the scorer fails, not just how often.
- ETHOS binary (Mollas et al. 2022): 998 YouTube/Reddit comments; hate = `isHate` >= 0.5 (a share
  of annotators). ROC-AUC (threshold-free) and F1 at 0.5.
- Agreement with the Perspective API (the instrument of RealToxicityPrompts' published numbers): the
  bundled RTP records' prompts and continuations in the `validate` half of the record split
  (`audit.scoring.calibration`; never used to train or calibrate), each with its 2020 Perspective
  toxicity. Spearman rho, ROC-AUC at Perspective >= 0.5, and the calibration error of the score
  against Perspective (10 equal-width bins), so "toxicity >= 0.5" can be read on Perspective's scale.
- False positives on degenerate text: the share of a fixed set of garbled, repetitive and noisy texts
  (random OPT tokens, token loops, word salad, repeated phrases, byte noise, truncated sentences,
  punctuation; `train_embedded.degenerate_texts` with a seed and BOLD domains that training never
  uses) scored >= 0.5. Small and broken models emit exactly this, and none of it is toxic.

The data comes in as one `audit.scoring.data.ScorerData` (the bundled one: `audit.cli.bundled_scorer_data`).
Works with any Scorer that has a "toxicity" key. The record is written as versioned JSON beside the
scorer's weights and summarised in every report that uses that scorer.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from audit.errors import AuditError
from audit.metrics import wilson_interval
from audit.scoring.base import Scorer, score_texts
from audit.scoring.calibration import calibration_error, load_scored_texts
from audit.scoring.data import DataFile, ScorerData
from audit.store import atomic_write_json
from audit.pinning import sha256_file

SCHEMA_VERSION = 2  # 2: Perspective agreement, degenerate-text false positives, calibration
THRESHOLD = 0.5
# The record's sections are named after the data sets measured on (schema 2): every record written,
# every run that carries a summary of one, and the reports read these names, so they are kept, once.
FUNCTIONAL_TESTS = "hatecheck"  # the per-functionality accuracy section
LABELLED_HATE_SPEECH = "ethos"  # the ROC-AUC / F1 section
HELDOUT_DOMAINS = "bold_domains"  # the degenerate section's list of sentence-beginning domains
# The headline numbers of a summary (`validity_summary`), with how reports and cards label them.
HEADLINE_NUMBERS = ((f"{FUNCTIONAL_TESTS}_accuracy", "HateCheck accuracy"),
                    (f"{LABELLED_HATE_SPEECH}_roc_auc", "ETHOS ROC-AUC"))
FUNCTIONAL_TESTS_CITATION = ("Paul Röttger, Bertie Vidgen, Dong Nguyen, Zeerak Waseem, Helen Margetts, Janet B. "
                      "Pierrehumbert. HateCheck: Functional Tests for Hate Speech Detection Models. ACL 2021.")
RTP_CITATION = ("Samuel Gehman, Suchin Gururangan, Maarten Sap, Yejin Choi, Noah A. Smith. RealToxicityPrompts: "
                "Evaluating Neural Toxic Degeneration in Language Models. Findings of EMNLP 2020 (records with 2020 "
                "Perspective API scores; DecodingTrust's sample, Wang et al. 2023).")
DEGENERATE_SEED = 20_211  # the held-out degenerate set; training uses other seeds (train_embedded)
DEGENERATE_N = 2_000  # 250 of each of the 8 kinds
HATE_SPEECH_CITATION = ("Ioannis Mollas, Zoe Chrysopoulou, Stamatis Karlos, Grigorios Tsoumakas. ETHOS: a multi-label "
                  "hate speech detection dataset. Complex & Intelligent Systems, 2022.")


def average_ranks(values: Sequence[float]) -> np.ndarray:
    """1-based ranks; each run of tied values gets the mean of its ranks."""
    s = np.asarray(values, dtype=np.float64)
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    ranks = np.empty(len(s), dtype=np.float64)
    i = 0
    while i < len(s):  # walk each run of equal scores and give it the mean of its 1-based ranks
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def roc_auc(scores: Sequence[float], labels: Sequence[int]) -> float:
    """Exact ROC-AUC by the Mann-Whitney rank formula; tied scores get their average rank (count 1/2)."""
    y = np.asarray(labels, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        raise AuditError("ROC-AUC needs at least one positive and one negative label")
    ranks = average_ranks(scores)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rho: the Pearson correlation of average ranks (ties handled); needs spread in both."""
    ra, rb = average_ranks(a), average_ranks(b)
    if len(ra) != len(rb) or len(ra) < 2 or ra.std() == 0 or rb.std() == 0:
        raise AuditError("Spearman's rho needs two equal-length samples with at least two distinct values each")
    return float(np.corrcoef(ra, rb)[0, 1])


def f1_score(predicted: Sequence[bool], labels: Sequence[int]) -> float:
    """F1 of the positive class; 0.0 when there are no true positives."""
    p = np.asarray(predicted, dtype=bool)
    y = np.asarray(labels, dtype=bool)
    tp = int((p & y).sum())
    fp = int((p & ~y).sum())
    fn = int((~p & y).sum())
    return 0.0 if tp == 0 else 2.0 * tp / (2.0 * tp + fp + fn)


def load_functional_tests(path: Path) -> list[dict[str, str]]:
    """Rows with functionality, test_case and label_gold ('hateful' / 'non-hateful')."""
    try:
        with open(path, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            for col in ("functionality", "test_case", "label_gold"):
                if col not in (reader.fieldnames or []):
                    raise AuditError(f"HateCheck file {path}: missing column {col!r}")
            rows = []
            for i, row in enumerate(reader, start=2):
                if row["label_gold"] not in ("hateful", "non-hateful"):
                    raise AuditError(f"HateCheck file {path} row {i}: label_gold {row['label_gold']!r}")
                rows.append({k: row[k] for k in ("functionality", "test_case", "label_gold")})
    except OSError as e:
        raise AuditError(f"HateCheck file {path}: cannot read ({e})") from e
    if not rows:
        raise AuditError(f"HateCheck file {path}: no rows")
    return rows


def _toxicity(scorer: Scorer, texts: list[str]) -> np.ndarray:
    if "toxicity" not in scorer.keys:
        raise AuditError(f"scorer {scorer.name} has no 'toxicity' key (keys: {list(scorer.keys)})")
    by_text = score_texts(scorer, texts, None)  # validated, deduplicated, with a progress bar
    return np.asarray([by_text[t]["toxicity"] for t in texts], dtype=np.float64)


def _round(x: float) -> float:
    return round(float(x), 6)


def perspective_agreement(scorer: Scorer, paths: Sequence[Path]) -> dict[str, Any]:
    """Agreement with 2020 Perspective on the held-out (`validate`) RTP texts: rho, ROC-AUC, ECE."""
    texts = [t for t in load_scored_texts(paths) if t.part == "validate"]
    scores = _toxicity(scorer, [t.text for t in texts])
    target = np.array([t.perspective for t in texts])
    toxic = target >= THRESHOLD
    cal = calibration_error(scores, target)
    return {"n": len(texts), "n_toxic": int(toxic.sum()), "split": "validate",
            "spearman": _round(spearman(scores, target)), "roc_auc": _round(roc_auc(scores, toxic)),
            "ece": _round(cal.ece),
            "ece_bins": [{k: (_round(v) if isinstance(v, float) else v) for k, v in b.items()} for b in cal.bins],
            "mean_score": _round(scores.mean()), "mean_perspective": _round(target.mean()),
            "rate_at_threshold": _round((scores >= THRESHOLD).mean()), "perspective_rate": _round(toxic.mean()),
            "citation": RTP_CITATION}


def degenerate_false_positives(scorer: Scorer, data: ScorerData, *, seed: int = DEGENERATE_SEED,
                               n: int = DEGENERATE_N) -> dict[str, Any]:
    """The share of a held-out set of degenerate texts (none toxic) scored >= 0.5, overall and per kind."""
    from audit.scoring.train_embedded import HELDOUT_DOMAINS as domains, degenerate_source, degenerate_texts

    source = degenerate_source([f.path for f in data.sentence_files(domains)])
    pairs = degenerate_texts(np.random.default_rng(seed), n, source)
    scores = _toxicity(scorer, [t for _, t in pairs])
    flagged = scores >= THRESHOLD
    kinds = [k for k, _ in pairs]
    ci = wilson_interval(int(flagged.sum()), len(pairs))
    per_kind = {k: _round(flagged[np.array([x == k for x in kinds])].mean()) for k in dict.fromkeys(kinds)}
    worst = max(range(len(pairs)), key=lambda i: (scores[i], -i))
    return {"n": len(pairs), "seed": seed, HELDOUT_DOMAINS: list(domains),
            "fpr": _round(flagged.mean()), "ci": [_round(ci[0]), _round(ci[1])] if ci else None,
            "per_kind": per_kind, "mean_score": _round(scores.mean()),
            "highest": {"kind": kinds[worst], "text": pairs[worst][1][:200], "score": _round(scores[worst])}}


def validate_scorer(scorer: Scorer, data: ScorerData, *, out_path: Path | None = None, agreement: bool = True,
                    degenerate: bool = True) -> dict[str, Any]:
    """Score the functional tests (HateCheck), the labelled hate speech (ETHOS), the held-out RTP texts and
    degenerate text of `data` with `scorer`; return (and optionally write) the validity record.
    `agreement=False` or `degenerate=False` leave a part out (recorded as null, never silently)."""
    hc = load_functional_tests(data.functional_tests.path)
    hc_scores = _toxicity(scorer, [r["test_case"] for r in hc])
    correct = (hc_scores >= THRESHOLD) == np.array([r["label_gold"] == "hateful" for r in hc])
    funcs: dict[str, dict[str, Any]] = {}
    for name in sorted({r["functionality"] for r in hc}):
        mask = np.array([r["functionality"] == name for r in hc])
        k, n = int(correct[mask].sum()), int(mask.sum())
        ci = wilson_interval(k, n)
        funcs[name] = {"accuracy": _round(k / n), "n": n, "ci": [_round(ci[0]), _round(ci[1])] if ci else None}

    labelled = data.read_labelled_hate_speech(data.labelled_hate_speech.path)
    labels = [int(hate) for _, hate in labelled]
    e_scores = _toxicity(scorer, [t for t, _ in labelled])
    auc = roc_auc(e_scores, labels)
    f1 = f1_score(e_scores >= THRESHOLD, labels)

    scored_files = list(data.prompt_toxicity_records) if agreement else []
    persp = perspective_agreement(scorer, [f.path for f in scored_files]) if scored_files else None
    degen = degenerate_false_positives(scorer, data) if degenerate else None
    calibration = _scorer_calibration(scorer)

    weak = sorted(funcs, key=lambda f: (funcs[f]["accuracy"], f))[:3]
    hc_acc = float(correct.mean())
    weak_text = ", ".join(f"{f} {funcs[f]['accuracy']:.2f}" for f in weak)
    summary = f"{scorer.name} scorer: HateCheck accuracy {hc_acc:.2f}; ETHOS ROC-AUC {auc:.2f}, F1 {f1:.2f}"
    if persp:
        summary += (f"; vs Perspective on {persp['n']} held-out RTP texts: Spearman {persp['spearman']:.2f}, "
                    f"ROC-AUC {persp['roc_auc']:.2f}, calibration error {persp['ece']:.3f}")
    if degen:
        summary += f"; degenerate-text false positives {100 * degen['fpr']:.2f}%"
    summary += f"; weakest on {weak_text}"
    files: list[DataFile] = [data.functional_tests, data.labelled_hate_speech, *scored_files]
    if degen:  # the held-out degenerate text is drawn from these files (and the bundled OPT tokenizer)
        files += data.sentence_files(degen[HELDOUT_DOMAINS])
    record = {
        "schema_version": SCHEMA_VERSION,
        "scorer": scorer.name,
        "scorer_id": scorer.id,
        "threshold": THRESHOLD,
        FUNCTIONAL_TESTS: {"accuracy": _round(hc_acc), "n": len(hc), "functionalities": funcs,
                           "citation": FUNCTIONAL_TESTS_CITATION},
        LABELLED_HATE_SPEECH: {"roc_auc": _round(auc), "f1": _round(f1), "n": len(labelled),
                               "n_hate": int(sum(labels)), "citation": HATE_SPEECH_CITATION},
        "perspective": persp,
        "degenerate": degen,
        "calibration": calibration,
        "weak_spots": weak,
        "summary": summary,
        "data_sha256": {f.name: sha256_file(f.path) for f in files},
    }
    if out_path is not None:
        atomic_write_json(Path(out_path), record)
    return record


def _scorer_calibration(scorer: Scorer) -> dict[str, Any] | None:
    """The scorer's own account of how its output was put on Perspective's scale, if it has one."""
    try:
        cal = scorer.provenance().get("calibration")
    except AuditError:  # e.g. a malformed old record beside it: the new one replaces it
        return None
    return dict(cal) if isinstance(cal, dict) else None


def validity_summary(path: Path, scorer_id: str) -> dict[str, Any] | None:
    """The part of a validity record that runs and reports carry; None when there is no record.

    A record measured on a different scorer id (other weights or version) is kept but marked
    stale, so a report never presents another model's quality as this one's.
    """
    if not Path(path).is_file():
        return None
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
        tests, labelled = record[FUNCTIONAL_TESTS], record[LABELLED_HATE_SPEECH]
        summary = {"path": Path(path).name, "schema_version": record.get("schema_version"),
                   "summary": record["summary"],
                   f"{FUNCTIONAL_TESTS}_accuracy": tests["accuracy"],
                   f"{LABELLED_HATE_SPEECH}_roc_auc": labelled["roc_auc"],
                   f"{LABELLED_HATE_SPEECH}_f1": labelled["f1"],
                   "weak_spots": {f: tests["functionalities"][f]["accuracy"] for f in record.get("weak_spots", [])},
                   "scorer_id": record.get("scorer_id")}
        # schema 2 parts; null when a record (or an older schema) has no such part
        persp = record.get("perspective")
        summary["perspective"] = ({k: persp[k] for k in ("n", "spearman", "roc_auc", "ece", "split")}
                                  if persp else None)
        degen = record.get("degenerate")
        summary["degenerate_fpr"] = degen["fpr"] if degen else None
        cal = record.get("calibration")
        summary["calibration"] = ({k: cal[k] for k in ("target", "method", "n", "split") if k in cal}
                                  if cal else None)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise AuditError(f"validity record {path}: unreadable or malformed ({type(e).__name__}: {e})") from None
    if summary["scorer_id"] != scorer_id:
        summary["stale"] = True
        summary["summary"] += f" [measured on {summary['scorer_id']}, not on this scorer {scorer_id}]"
    return summary


def format_validity(record: dict[str, Any]) -> str:
    """A plain-text table: per-functionality HateCheck accuracy with CIs, then the ETHOS numbers."""
    hc = record[FUNCTIONAL_TESTS]
    funcs = hc["functionalities"]
    width = max([len("functionality")] + [len(f) for f in funcs])
    lines = [f"Validity of {record['scorer']} ({record['scorer_id']})", "",
             f"HateCheck (n={hc['n']}): accuracy {hc['accuracy']:.3f} at threshold {record.get('threshold', 0.5)}",
             f"  {'functionality':<{width}}  {'acc':>5}  {'95% CI':>13}  {'n':>4}"]
    for name, f in funcs.items():
        ci = f"[{f['ci'][0]:.2f}, {f['ci'][1]:.2f}]" if f.get("ci") else "-"
        flag = "  <- weak" if name in record.get("weak_spots", []) else ""
        lines.append(f"  {name:<{width}}  {f['accuracy']:5.2f}  {ci:>13}  {f['n']:4d}{flag}")
    e = record[LABELLED_HATE_SPEECH]
    lines += ["", f"ETHOS binary (n={e['n']}): ROC-AUC {e['roc_auc']:.3f}, F1 {e['f1']:.3f} at 0.5"]
    p = record.get("perspective")
    if p:
        lines += ["", f"Perspective agreement, held-out RTP texts (n={p['n']}, {p['n_toxic']} with Perspective "
                      f">= 0.5): Spearman {p['spearman']:.3f}, ROC-AUC {p['roc_auc']:.3f}, calibration error "
                      f"{p['ece']:.3f}; share >= 0.5: {p['rate_at_threshold']:.3f} (Perspective "
                      f"{p['perspective_rate']:.3f})"]
    d = record.get("degenerate")
    if d:
        kinds = ", ".join(f"{k} {100 * v:.1f}%" for k, v in d["per_kind"].items())
        lines += ["", f"Degenerate text (n={d['n']}, seed {d['seed']}): false-positive rate {100 * d['fpr']:.2f}% "
                      f"({kinds})"]
    c = record.get("calibration")
    if c:
        lines += ["", f"Calibration onto {c.get('target')}: {c.get('method')}; fitted on {c.get('n')} RTP texts "
                      f"of the {c.get('split')} split, disjoint from the agreement texts above"]
    lines += ["", record["summary"]]
    return "\n".join(lines)
