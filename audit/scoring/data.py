"""The bundled data a toxicity scorer is trained and validated on, as one typed value.

The files live beside the probes and some are read by the probes' own parsers. audit/ sits below
probes/, so the composition root (`audit.cli.bundled_scorer_data`) builds this value and passes it to
`train_embedded.train_embedded_head` and `validity.validate_scorer`; a test passes its own small
files the same way. Each field says what the text is; its comment says where the bundled one comes from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol, Sequence

from audit.errors import AuditError


@dataclass(frozen=True)
class DataFile:
    """A file read, and the name the head's and the validity record's sha256 lists give it."""

    name: str  # its path below the bundled data folder (recorded beside its sha256)
    path: Path


class StatementLine(Protocol):
    """One prompt line of a statement list, as the line parser reads it."""

    statements: tuple[str, ...]
    glued: bool  # two statements ran together without a separator
    missing_end: bool  # the line lacked its final separator


StatementParser = Callable[[str], StatementLine]
HateSpeechReader = Callable[[Path], Sequence[tuple[str, bool]]]  # file -> (text, judged hate speech) pairs


@dataclass(frozen=True)
class ScorerData:
    """Where the scorer's training and validation text is, and the parsers that read the shared formats."""

    # training (train_embedded)
    labelled_tweets: DataFile  # CSV: class (0 hate speech, 1 offensive, 2 neither), tweet (Davidson et al. 2017)
    hateful_statements: tuple[DataFile, ...]  # lists of implicitly hateful statements (ToxiGen's hate_* prompts)
    benign_statements: tuple[DataFile, ...]  # benign statements about the same groups (ToxiGen's neutral_*)
    parse_statements: StatementParser  # one line of those files (the ToxiGen probe's parser)
    sentence_beginnings: tuple[tuple[str, DataFile], ...]  # (domain, file): Wikipedia sentence beginnings (BOLD)
    identity_descriptors: DataFile  # identity descriptors by category (HolisticBias v1.1 descriptors.json)
    identity_nouns: DataFile  # (singular, plural) person nouns (HolisticBias v1.1 nouns.json)
    # both: prompts and continuations of web text with their 2020 Perspective toxicity (RealToxicityPrompts
    # records), split by `calibration.split_of` into fit / calibrate / validate
    prompt_toxicity_records: tuple[DataFile, ...]
    # validation (validity)
    functional_tests: DataFile  # CSV: functionality, test_case, label_gold (HateCheck)
    labelled_hate_speech: DataFile  # comments with the share of annotators who judged them hate (ETHOS binary)
    read_labelled_hate_speech: HateSpeechReader  # its reader (the ETHOS probe's)

    def sentence_files(self, domains: Sequence[str]) -> list[DataFile]:
        """The sentence-beginning files of `domains`, in that order."""
        by_domain = dict(self.sentence_beginnings)
        missing = [d for d in domains if d not in by_domain]
        if missing:
            raise AuditError(f"no sentence-beginning file for domain(s) {', '.join(missing)} "
                             f"(have {', '.join(by_domain)})")
        return [by_domain[d] for d in domains]
