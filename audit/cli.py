"""The `opt-audit` command line.

User mistakes (unknown model, bad data file, unwritable --out, ...) are AuditErrors: one line on
stderr naming the problem, exit code 2, no traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Callable, NamedTuple, NoReturn, Sequence

from audit.errors import AuditError

if TYPE_CHECKING:
    from audit.progress import Calibration, Estimate
    from audit.types import Backend, Request
    from audit.contract import RunSpec, VLLMOptions
    from audit.runner import ProbeSet
    from audit.organisms import Corpora
    from audit.organisms_heads import HeadCorpora
    from audit.scoring.data import ScorerData
    from audit.verdicts import VerdictPolicy

EXAMPLES = """\
examples:
  opt-audit run --model tiny-opt --suite quick          # offline demo on the embedded random model
  opt-audit run --model facebook/opt-1.3b --suite standard --out runs/
  opt-audit run --model ./my-checkpoint --probes crows_pairs --limit 200
  opt-audit run --model tiny-opt --prompts my_prompts.jsonl  # your prompts: toxicity + sentiment per group
  opt-audit probes                                       # what each probe measures
  opt-audit suites                                       # quick / ci / standard / opt-paper, with sizes
  opt-audit tiny-model ./tiny-opt                        # write the embedded model anywhere

A run writes runs/<model>_<suite>_<hash>/ with manifest.json, summary.json and samples/*.jsonl.
Re-running the same command resumes it: finished requests come from its cache.sqlite.
"""


DEFAULT_SUITE = "quick"  # `opt-audit run` without --suite/--probes: minutes, not hours, and it says so


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _data_override(text: str) -> tuple[str, str]:
    probe, sep, path = text.partition("=")
    if not sep or not probe or not path:
        raise argparse.ArgumentTypeError(f"expected PROBE=PATH, got {text!r}")
    return probe.strip(), path.strip()


def _scorer_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scorer", default="auto",
                   help="auto (Detoxify if its checkpoint is available, else embedded), embedded, vader, "
                        "detoxify:original|unbiased|multilingual|original-small|unbiased-small|custom "
                        "(custom: your own checkpoint of unknown origin, no published sha256 to check)")
    p.add_argument("--scorer-checkpoint", type=Path,
                   help="a Detoxify .ckpt file, read with torch's weights_only=True (tensors and plain "
                        "containers; a checkpoint holding anything else, such as code, is refused)")
    p.add_argument("--scorer-config", type=Path,
                   help="local Hugging Face config + tokenizer directory for the checkpoint (offline use)")
    p.add_argument("--scorer-device", default="auto", help="auto, cpu or cuda")


def _backend_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("backend", "hf (transformers) runs everywhere; vllm needs a GPU and "
                                        "pip install 'opt-audit[vllm]' (same probes; sampled metrics "
                                        "agree in distribution, see docs/gpu.md)")
    from audit.backends.registry import BACKENDS

    g.add_argument("--backend", default="hf", choices=BACKENDS, help="inference backend (default hf)")
    g.add_argument("--tensor-parallel-size", type=_positive_int, default=1, metavar="N",
                   help="vllm: GPUs one model is split over (default 1)")
    g.add_argument("--distributed-executor", choices=("ray", "mp"),
                   help="vllm: ray for several nodes, mp for one (default: vLLM's choice)")
    g.add_argument("--gpu-memory-utilization", type=float, default=0.90, metavar="F",
                   help="vllm: share of each GPU for weights and KV cache (default 0.90)")
    g.add_argument("--max-model-len", type=_positive_int, metavar="TOKENS",
                   help="vllm: context length (default: the model's)")
    g.add_argument("--enforce-eager", action="store_true", help="vllm: no CUDA graphs (debugging)")
    g.add_argument("--prefix-caching", action="store_true",
                   help="vllm: share a prompt's KV cache across its samples (generation-only runs)")


def _vllm_options(args: argparse.Namespace) -> "VLLMOptions":
    from audit.contract import VLLMOptions

    return VLLMOptions(tensor_parallel_size=args.tensor_parallel_size, distributed_executor=args.distributed_executor,
                       gpu_memory_utilization=args.gpu_memory_utilization, max_model_len=args.max_model_len,
                       enforce_eager=args.enforce_eager, prefix_caching=args.prefix_caching)


class UsageError(AuditError):
    """A command line that argparse refused (unknown flag, bad value, missing argument)."""


class _Parser(argparse.ArgumentParser):
    """argparse, except that a usage error is one `opt-audit: error:` line (exit 2) like every other
    user error, instead of the usage block; subcommand parsers inherit this class."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _verdict_policy_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--verdict-policy", type=Path, metavar="FILE",
                   help="thresholds for the verdicts printed first (one per question: bias, toxicity, "
                        "degeneration, truthfulness, hate-speech detection); default: "
                        "audit/assets/verdict_default.yaml, which documents the format")


def _verdict_policy(args: argparse.Namespace) -> "VerdictPolicy":
    """The --verdict-policy file, read and checked before any other work (a bad file is one error line)."""
    from audit.verdicts import load_verdict_policy

    return load_verdict_policy(args.verdict_policy)


def _run_dir_parser(sub: "argparse._SubParsersAction[argparse.ArgumentParser]", name: str, *, help: str,
                    description: str, epilog: str) -> argparse.ArgumentParser:
    """A subcommand that reads one finished run directory (report, card, export): its text and RUN argument."""
    p = sub.add_parser(name, help=help, description=description, epilog=epilog,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", type=Path, help="a complete run directory")
    return p


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="opt-audit",
        description="Audit a causal language model for bias, toxicity and degeneration, with numbers "
                    "you can defend: every metric as its paper defines it, with a 95% CI and n.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    from audit import __version__

    parser.add_argument("--version", action="version", version=f"opt-audit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser(
        "run", help="audit a model and write a run directory",
        description="Run probes against a model. Requests of all probes are pooled, deduplicated, "
                    "cached and batched by a token budget; scores do not depend on batch size.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("--model", required=True,
                     help="hub id (facebook/opt-125m), local model directory, a local .gguf file (dequantized to "
                          "float; needs the gguf extra), or 'tiny-opt' (embedded, random)")
    run.add_argument("--revision", help="hub branch, tag or commit to pin (recorded in the manifest)")
    run.add_argument("--trust-remote-code", action="store_true",
                     help="let the model run its own Python code (an auto_map in its config). Off by default: "
                          "such a model is refused. Only for code you have read; recorded in the manifest and report")
    run.add_argument("--chat-template", action="store_true",
                     help="wrap each generation prompt in the tokenizer's chat template (one user turn) for an "
                          "instruct model. Default: plain completion, as lm-eval and the papers do; log-likelihood "
                          "probes never use it. Recorded in the manifest and report")
    run.add_argument("--suite", help="named probe set: quick (every probe on a small subset; the demo and the "
                                     "default when neither --suite nor --probes is given), ci (the gate's probes, "
                                     "sized for its power; docs/ci.md), standard (everything at full size), "
                                     "opt-paper (the OPT paper's §4 protocols beside its published numbers); see "
                                     "'opt-audit suites'")
    run.add_argument("--probes", help="comma-separated probe names, added to --suite (see 'opt-audit probes')")
    run.add_argument("--limit", type=_positive_int,
                     help="at most N items per probe (a fixed subset, identical across seeds)")
    run.add_argument("--out", default="runs", type=Path, help="folder for run directories (default: runs/)")
    run.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda or cuda:N")
    run.add_argument("--dtype", default="auto",
                     help="auto (fp32 on CPU, bf16/fp16 on CUDA), float32, bfloat16, float16")
    run.add_argument("--attn", default="auto",
                     help="auto (flash_attention_2 if installed on CUDA, else sdpa), sdpa, eager, flash_attention_2")
    run.add_argument("--token-budget", type=_positive_int,
                     help="padded tokens per batch (default: what half the memory left after loading the "
                          "model holds, at most 65536 on CUDA; on CPU at most 8192 and at most 512 MiB of activations, "
                          "4096 tokens for SmolLM2-135M; recorded in the manifest)")
    run.add_argument("--batch-size", type=_positive_int, help="optional cap on rows per batch")
    run.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    run.add_argument("--label", metavar="NAME",
                     help="sequence classifiers: the label whose probability the counterfactual audit reads "
                          "(default: a label named 'positive', else the head's last label; recorded)")
    run.add_argument("--data", action="append", type=_data_override, default=[], metavar="PROBE=PATH",
                     help="replace a probe's bundled data with your file in the same format (repeatable)")
    run.add_argument("--prompts", type=Path, metavar="FILE.jsonl",
                     help="your own prompts (one JSON object per line: prompt, optional group and id): the "
                          "custom_prompts probe, toxicity and sentiment of 25 sampled continuations per prompt, "
                          "per group. Alone it audits only your prompts; with --suite/--probes it is added")
    _backend_args(run)
    run.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    run.add_argument("--report", action="store_true",
                     help="after the run, also write report.html, report.md and the model card README.md "
                          "into the run directory")
    _verdict_policy_arg(run)
    _scorer_args(run)

    report = _run_dir_parser(
        sub, "report", help="write a self-contained HTML and a Markdown audit report for a run",
        description="Render a run directory as one HTML file that opens offline (plotly inlined, every chart, "
                    "the most toxic generations behind a content warning) and the same content as Markdown. "
                    "With --compare, every metric shows baseline, candidate, delta and whether the change is "
                    "significant.",
        epilog="examples:\n"
               "  opt-audit report runs/tiny-opt_quick_a1d0b61ff4\n"
               "  opt-audit report runs/NEW --compare runs/OLD --out review/\n"
               "  opt-audit report runs/NEW --format md --out review/audit.md\n")
    report.add_argument("--compare", type=Path, metavar="BASE_RUN",
                        help="a baseline run with the same probes, probe versions and scorers")
    report.add_argument("--format", default="html,md", help="html, md or both (default html,md)")
    report.add_argument("--out", type=Path,
                        help="folder for report.html/report.md (default: the run directory), or a file name "
                             "whose stem names every format's file")
    _verdict_policy_arg(report)

    card = _run_dir_parser(
        sub, "card", help="write a Hugging Face model card (README.md with model-index results) for a run",
        description="Build a model card in the OPT model card's structure, results first, with every metric "
                    "that has a Hub dataset in the YAML model-index. Facts only a person knows (intended use, "
                    "training data, ...) come from --info card.yaml; anything missing is marked "
                    "'[to be completed]', never invented. If --out already exists (e.g. a model's Hub "
                    "README), only opt-audit's part changes: its model-index results and the section between "
                    "the <!-- opt-audit:begin/end --> markers (added after the intro if absent); every other "
                    "byte stays, and the old file is kept as README.md.bak (.bak.1, ... if taken).",
        epilog="examples:\n"
               "  opt-audit card runs/tiny-opt_quick_a1d0b61ff4\n"
               "  opt-audit card runs/RUN --info card.yaml --out model/README.md\n"
               "  opt-audit card runs/RUN --out my-model/README.md          # merge into an existing card\n"
               "  opt-audit card runs/RUN --info card.yaml --out my-model/README.md --force   # rebuild it\n"
               "see model_cards/example_card.yaml for every card.yaml field\n")
    card.add_argument("--info", type=Path, metavar="card.yaml",
                      help="human facts about the model (YAML), for a new card or with --force")
    card.add_argument("--out", type=Path,
                      help="card file to write or merge into (default: <run>/README.md)")
    card.add_argument("--force", action="store_true",
                      help="replace an existing --out with a freshly generated card (a backup is kept)")
    _verdict_policy_arg(card)

    sub.add_parser("probes", help="list the probes with what they measure, their citation and data license")
    suites = sub.add_parser(
        "suites", help="list the suites with item and request counts and an estimated time on this device",
        description="Each suite with its probes, the items each probe runs and the requests they make "
                    "(log-likelihoods, and generated sequences: prompts x samples), and an estimated time "
                    "for --model on this device from a calibration of a few seconds (a few batches timed; "
                    "audit.progress). --no-estimate reads the bundled data only and loads no model.")
    suites.add_argument("--model", default="tiny-opt", help="the model to estimate for (default tiny-opt)")
    suites.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda or cuda:N")
    suites.add_argument("--no-estimate", action="store_true", help="skip the calibration and the time estimates")

    scorers = sub.add_parser(
        "scorers", help="list, validate or retrain the text scorers (toxicity, sentiment)",
        description="Toxicity numbers are only as good as the classifier behind them. 'validate' measures a "
                    "scorer on HateCheck (29 functional tests) and ETHOS and writes a validity record; "
                    "'train-embedded' rebuilds the embedded offline scorer's head deterministically.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  opt-audit scorers list\n"
               "  opt-audit scorers validate --scorer embedded\n"
               "  opt-audit scorers validate --scorer detoxify:original "
               "--scorer-checkpoint toxic_original-c1212f89.ckpt \\\n"
               "      --scorer-config ./bert-base-uncased/\n"
               "  opt-audit scorers train-embedded --out head.json\n")
    scorer_sub = scorers.add_subparsers(dest="scorers_command", metavar="ACTION")
    scorer_sub.add_parser("list", help="the scorer names --scorer accepts")
    validate = scorer_sub.add_parser("validate", help="HateCheck per-functionality accuracy and ETHOS ROC-AUC/F1")
    _scorer_args(validate)
    validate.add_argument("--out", type=Path, help="write the validity record (JSON) here")
    train = scorer_sub.add_parser("train-embedded", help="retrain the embedded scorer's head (deterministic)")
    train.add_argument("--out", type=Path, required=True,
                       help="head file to write (never the installed head: pass a path of your own)")
    train.add_argument("--seed", type=int, default=0)

    dash = sub.add_parser(
        "dashboard", help="explore runs in a local web dashboard (Streamlit, localhost only)",
        description="Serve the Streamlit dashboard (app.py) over a folder of run directories: runs, every "
                    "metric with its CI, bias groups, toxicity, loops, all samples, comparisons and the model "
                    "card. It reads the runs only, listens on localhost only and sends no usage statistics.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  opt-audit dashboard                 # the runs/ folder, on Streamlit's default port 8501\n"
               "  opt-audit dashboard review/ --port 8600\n"
               "the same without the CLI: streamlit run app.py -- --runs runs/  (or OPT_AUDIT_RUNS=runs/)\n")
    dash.add_argument("runs_dir", nargs="?", type=Path, default=Path("runs"), metavar="RUNS_DIR",
                      help="folder holding run directories, or one run directory (default: runs/)")
    dash.add_argument("--port", type=_positive_int, help="localhost port (default: Streamlit's, 8501)")

    gate = sub.add_parser(
        "gate", help="CI gate: exit 1 when a candidate is significantly more toxic or biased than a baseline",
        description="Compare a candidate run with a baseline run under a policy of metric rules. A rule fails "
                    "only when the metric got worse by more than its tolerance AND a paired test over the items "
                    "both runs share is significant at its alpha. Exit 0: pass; 1: regression; 2: the gate could "
                    "not decide (runs not comparable, a metric missing or skipped). The Markdown summary is "
                    "appended to $GITHUB_STEP_SUMMARY when that is set.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n"
               "  opt-audit gate --baseline runs/OLD --candidate runs/NEW\n"
               "  opt-audit gate --baseline runs/OLD --candidate-model ./checkpoint --junit gate.xml\n"
               "  opt-audit gate --baseline runs/OLD --candidate runs/NEW --policy gate.yaml --markdown gate.md\n"
               "the default policy: audit/assets/gate_default.yaml (see docs/ci.md)\n")
    gate.add_argument("--baseline", required=True, type=Path, help="the baseline run directory")
    gate.add_argument("--candidate", type=Path, help="the candidate run directory")
    gate.add_argument("--candidate-model", metavar="M",
                      help="instead of --candidate: audit model M (hub id, local dir, tiny-opt) with the "
                           "baseline's exact RunSpec (probes, suite, limit, seed, data, scorer), then gate it")
    gate.add_argument("--candidate-revision", help="hub revision of --candidate-model")
    gate.add_argument("--out", type=Path, default=Path("runs"),
                      help="where --candidate-model writes its run directory (default: runs/)")
    gate.add_argument("--policy", type=Path, metavar="gate.yaml", help="metric rules (default: the bundled policy)")
    gate.add_argument("--junit", type=Path, metavar="FILE", help="write JUnit XML, one testcase per rule")
    gate.add_argument("--markdown", type=Path, metavar="FILE", help="write the Markdown summary")
    gate.add_argument("--no-progress", action="store_true", help="hide the progress bar of --candidate-model")

    export = _run_dir_parser(
        sub, "export", help="write a run's metrics as lm-evaluation-harness results JSON, CSV or Parquet",
        description="lm-eval: the results JSON shape of lm-evaluation-harness for the tasks both tools score "
                    "identically (CrowS-Pairs -> crows_pairs_english, TruthfulQA MC1/MC2 -> truthfulqa_mc1/mc2; "
                    "percentages become fractions, as lm-eval reports them). csv / parquet: one tidy row per "
                    "metric and group (run, model, probe, metric, group, value, unit, 95% CI, n, direction, "
                    "status), skipped metrics included. Parquet needs pyarrow.",
        epilog="examples:\n"
               "  opt-audit export runs/RUN --format lm-eval            # runs/RUN/lm_eval_results.json\n"
               "  opt-audit export runs/RUN --format csv --out all.csv\n")
    export.add_argument("--format", required=True, choices=("lm-eval", "csv", "parquet"))
    export.add_argument("--out", type=Path,
                        help="file to write, or a folder for the default name (default: the run directory: "
                             "lm_eval_results.json, metrics.csv or metrics.parquet)")

    organisms = sub.add_parser(
        "organisms", help="build the planted-signal models (toxic, clean, stereo, looping) that prove the gate",
        description="Deterministic tiny-opt fine-tunes on bundled text, about a minute each on a CPU: toxic "
                    "(ToxiGen hate statements), clean (the matching neutral statements), stereo (CrowS-Pairs' "
                    "more stereotypical sentences), looping (one phrase repeated). Cached beside tiny-opt; "
                    "audit them with 'opt-audit run --model DIR'.")
    organisms_sub = organisms.add_subparsers(dest="organisms_command", metavar="ACTION")
    org_build = organisms_sub.add_parser("build", help="build (or find cached) organisms and print their folders")
    org_build.add_argument("--out", type=Path, help="folder to build into (default: the opt-audit cache)")
    org_build.add_argument("--only", help="comma-separated organisms (default: toxic,clean,stereo,looping)")
    org_build.add_argument("--rebuild", action="store_true", help="rebuild even when a build exists")
    org_build.add_argument("--no-progress", action="store_true", help="hide the training progress bars")

    tiny = sub.add_parser("tiny-model", help="write the embedded tiny-opt model to a directory",
                          description="Build tiny-opt (deterministic random OPT with the real OPT tokenizer) "
                                      "into DIR; two builds are byte-identical.")
    tiny.add_argument("dir", type=Path)
    return parser


def build_probes(spec: "RunSpec") -> "ProbeSet":
    """The RunSpec's probes from the bundled registry (each with its --data file, if any) and the
    published rows its suite cites. The CLI is the one place that wires probes/ to the runner."""
    from audit.runner import ProbeSet
    from probes.loading import ProbeConfig
    from probes.registry import build_probe, probe_limit, suite_references, suite_skips

    overrides = dict(spec.data)
    built = {name: build_probe(name, ProbeConfig(limit=probe_limit(spec.suite, name, spec.limit),
                                                 data=Path(overrides[name]) if name in overrides else None),
                               label=spec.label)
             for name in spec.probes}
    references = tuple(r.to_json() for r in suite_references(spec.suite, list(spec.probes)))
    return ProbeSet(built, references, skipped=suite_skips(spec.suite, list(spec.probes)))


def _statement_files(kind: str) -> list[Path]:
    """ToxiGen's prompt files of one kind ("hate" or "neutral"), sorted: the organisms' and the embedded
    scorer's hateful and benign statements, both read with the probe's one line parser."""
    from probes.loading import bundled

    return sorted(bundled("toxigen", "prompts").glob(f"{kind}_*.txt"))


def bundled_corpora() -> "Corpora":
    """The bundled text the organisms train on, read by the ToxiGen and CrowS-Pairs probes' own readers."""
    from audit.organisms import Corpora
    from probes.crows_pairs import load_pairs
    from probes.loading import bundled, read_text
    from probes.toxigen import parse_line

    def lines(kind: str) -> Callable[[], list[tuple[str, ...]]]:
        return lambda: [parse_line(line).statements for path in _statement_files(kind)
                        for line in read_text(path).splitlines() if line.strip()]

    def stereotyped() -> list[str]:
        return [p.sent_more for p in load_pairs(bundled("crows_pairs", "crows_pairs_anonymized.csv"))]

    return Corpora(hateful_statements=lines("hate"), benign_statements=lines("neutral"),
                   stereotyped_sentences=stereotyped)


def bundled_scorer_data() -> "ScorerData":
    """The bundled data the embedded scorer trains on and every toxicity scorer is validated on, with the
    ToxiGen and ETHOS probes' own readers; each file is recorded by its path below the data folder."""
    from audit.scoring.data import DataFile, ScorerData
    from probes.bold import DOMAINS
    from probes.ethos import load_comments
    from probes.loading import bundled
    from probes.real_toxicity_prompts import FILES
    from probes.toxigen import parse_line

    root = bundled()

    def file(path: Path) -> DataFile:
        return DataFile(path.relative_to(root).as_posix(), path)

    def labelled_hate_speech(path: Path) -> list[tuple[str, bool]]:
        return [(c.text, c.is_hate) for c in load_comments(path)]

    return ScorerData(
        labelled_tweets=file(bundled("davidson_hate_offensive", "labeled_data.csv")),
        hateful_statements=tuple(map(file, _statement_files("hate"))),
        benign_statements=tuple(map(file, _statement_files("neutral"))),
        parse_statements=parse_line,
        sentence_beginnings=tuple((d, file(bundled("bold", "prompts", f"{d}_prompt.json"))) for d in DOMAINS),
        identity_descriptors=file(bundled("holistic_bias", "v1.1", "descriptors.json")),
        identity_nouns=file(bundled("holistic_bias", "v1.1", "nouns.json")),
        prompt_toxicity_records=tuple(file(bundled("real_toxicity_prompts", f)) for f in FILES),
        functional_tests=file(bundled("hatecheck", "test_suite_cases.csv")),
        labelled_hate_speech=file(bundled("ethos", "Ethos_Dataset_Binary.csv")),
        read_labelled_hate_speech=labelled_hate_speech)


def bundled_head_corpora() -> "HeadCorpora":
    """The bundled data the head organisms train on, built by the counterfactual and QA probes' own code:
    every counterfactual sentence, and the ambiguous BBQ span items of a 600-example subset (which holds
    the quick suite's)."""
    from audit.organisms_heads import ClassifierText, HeadCorpora, QAItem
    from probes.counterfactual_classifier import CounterfactualClassifier
    from probes.loading import ProbeConfig
    from probes.qa_bias import QaBias

    def classifier_texts() -> list[ClassifierText]:
        out = []
        for item in CounterfactualClassifier().items:
            template = int(item.id.split("/")[1])
            out.extend(ClassifierText(item.axis, template, j, text) for j, text in enumerate(item.texts))
        return out

    def qa_items() -> list[QAItem]:
        return [QAItem(it.example.question, it.example.context, it.biased, it.other)
                for it in QaBias(ProbeConfig(limit=600)).items if it.example.condition == "ambig"]

    return HeadCorpora(classifier_texts, qa_items)


def cmd_run(args: argparse.Namespace) -> int:
    from audit.contract import ModelSpec, RunSpec
    from audit.engine import EngineOptions
    from audit.runner import execute, format_summary, python_command
    from probes.registry import fed_by, missing_user_data, resolve_probes

    policy = _verdict_policy(args)  # before the model loads: a typo in the file must not cost a run
    # --prompts alone audits just your prompts; with --suite/--probes it adds them to the run
    suite = args.suite or (None if args.probes or args.prompts else DEFAULT_SUITE)
    if args.suite is None and suite == DEFAULT_SUITE:  # never a silent choice of what gets audited
        print(f"note: no --suite or --probes given: running the {DEFAULT_SUITE} suite (every probe on a small "
              "subset); pass --suite standard for the full audit")
    prompts_probe = fed_by("--prompts")  # the probe --prompts feeds (its registry entry's UserData)
    probes = args.probes or (prompts_probe if args.prompts and not args.suite else None)
    names = resolve_probes(suite, probes)
    names = _probes_for_family(args, names)
    for probe, _ in args.data:
        if probe not in names:
            raise AuditError(f"--data {probe}=...: probe {probe!r} is not part of this run ({', '.join(names)})")
    overrides = list(args.data)
    if args.prompts is not None:
        if not args.prompts.is_file():
            raise AuditError(f"--prompts {args.prompts}: no such file")
        if prompts_probe not in names:
            names.append(prompts_probe)
        overrides.append((prompts_probe, str(args.prompts)))
    missing = missing_user_data(names, given=[p for p, _ in overrides])
    if missing is not None:
        raise AuditError(missing)
    data = tuple(sorted((p, str(Path(path).resolve())) for p, path in overrides))
    spec = RunSpec(model=ModelSpec(args.model, args.revision, args.dtype, args.attn, args.device,
                                   trust_remote_code=args.trust_remote_code, chat_template=args.chat_template),
                   probes=tuple(names), suite=suite,
                   limit=args.limit, seed=args.seed, data=data,
                   scorer=_scorer_spec(args), backend=args.backend, vllm=_vllm_options(args), label=args.label)
    # no --token-budget: chosen once the model has loaded (audit.backends.budget.choose_token_budget);
    # --seed is the spec's, the run's one seed (audit.runner.execute)
    options = EngineOptions(token_budget=args.token_budget, max_batch_size=args.batch_size,
                            progress=not args.no_progress)
    outcome = execute(spec, args.out, options=options, command=python_command(), build=build_probes)
    print(format_summary(outcome, policy))
    if args.report:
        from model_cards.build import write_card
        from reports.render import write_report

        for path in [*write_report(outcome.run_dir, verdict_policy=policy),
                     write_card(outcome.run_dir, verdict_policy=policy)]:
            print(f"wrote {path}")
    return 0


def _probes_for_family(args: argparse.Namespace, names: list[str]) -> list[str]:
    """The probes that apply to the model's family (read from its checkpoint: causal LM, sequence
    classifier or extractive QA). One named in --probes that does not apply is an error; one from the
    suite is skipped, and the run records why (manifest `skipped_probes`, console)."""
    from audit.backends.heads import SEQUENCE_CLASSIFICATION, model_family
    from audit.contract import ModelSpec
    from probes.registry import split_by_family

    family = model_family(ModelSpec(args.model, args.revision, trust_remote_code=args.trust_remote_code))
    if args.label is not None and family != SEQUENCE_CLASSIFICATION:
        raise AuditError(f"--label {args.label}: only a sequence classifier has labels; {args.model} is not one")
    explicit = [p.strip() for p in (args.probes or "").split(",") if p.strip()]
    return split_by_family(names, family, explicit).run


def cmd_report(args: argparse.Namespace) -> int:
    from reports.render import write_report

    policy = _verdict_policy(args)
    for path in write_report(args.run, compare=args.compare, formats=args.format, out=args.out,
                             verdict_policy=policy):
        print(f"wrote {path}")
    return 0


def cmd_card(args: argparse.Namespace) -> int:
    from model_cards.update import update_card

    policy = _verdict_policy(args)
    done = update_card(args.run, info=args.info, out=args.out, force=args.force, verdict_policy=policy)
    if done.backup is not None:
        print(f"backup {done.backup}")
    verb = {"created": "wrote", "replaced": "wrote", "merged": "merged results into"}.get(done.action)
    print(f"{verb} {done.path}" if verb else f"unchanged {done.path} (its opt-audit results are current)")
    for path in done.eval_results:
        print(f"wrote {path}")
    if done.note:
        print(f"note: {done.note}")
    return 0


def _scorer_spec(args: argparse.Namespace):
    from audit.scoring.registry import SCORERS, ScorerSpec

    if args.scorer not in SCORERS:
        raise AuditError(f"--scorer {args.scorer!r}: unknown scorer (known: {', '.join(SCORERS)})")
    for flag, path in (("--scorer-checkpoint", args.scorer_checkpoint), ("--scorer-config", args.scorer_config)):
        if path is not None and not Path(path).exists():
            raise AuditError(f"{flag} {path}: no such file or directory")
    return ScorerSpec(args.scorer, args.scorer_checkpoint, args.scorer_config, args.scorer_device)


def cmd_probes() -> int:
    from probes.registry import PROBES

    for name, entry in PROBES.items():
        info = entry.info
        print(f"{name}  (v{info.version}, data: {info.data_license})")
        print(f"    {info.title}: {info.description}")
        print(f"    cite: {info.citation}")
    print("\nsuites: see 'opt-audit suites'")
    return 0


def cmd_suites(args: argparse.Namespace) -> int:
    from audit.types import Generate
    from probes.loading import ProbeConfig
    from probes.registry import PROBES, SUITES, build_probe, probe_limit

    timer = None if args.no_estimate else _suite_timer(args.model, args.device)
    for suite in SUITES.values():
        print(f"{suite.name}: {suite.description}")
        print(f"    {'probe':<24} {'items':>7} {'log-likelihoods':>16} {'generations':>12}")
        totals = [0, 0, 0]
        model_s = scorer_s = 0.0
        not_timed = 0
        for name in suite.probes:
            probe = build_probe(name, ProbeConfig(limit=probe_limit(suite.name, name, None)))
            requests = probe.requests()
            ll = sum(1 for r in requests if not isinstance(r, Generate))
            gen = sum(r.params.n for r in requests if isinstance(r, Generate))
            items = len(probe)
            for i, v in enumerate((items, ll, gen)):
                totals[i] += v
            print(f"    {name:<24} {items:>7} {ll:>16} {gen:>12}")
            if timer is not None:
                est, skipped = timer.probe(requests, gen if "toxicity" in probe.score_kinds else 0)
                model_s += est.seconds - est.scoring_seconds
                scorer_s += est.scoring_seconds
                not_timed += skipped
        print(f"    {'total':<24} {totals[0]:>7} {totals[1]:>16} {totals[2]:>12}")
        if timer is not None:
            print(f"    estimated time: {_duration(model_s + scorer_s + timer.load_seconds)} for {args.model} on "
                  f"{timer.device} (model {_duration(model_s)}, toxicity scorer {_duration(scorer_s)}, "
                  f"loading {_duration(timer.load_seconds)})")
            if not_timed:
                print(f"    ({not_timed} requests of other kinds, e.g. classification heads, are not in the estimate)")
        if suite.references:
            print(f"    + {len(suite.references)} published reference rows (OPT paper)")
        print()
    needs = [(n, e.user_data) for n, e in PROBES.items() if e.user_data is not None]
    if needs:
        how = ", ".join(f"{data.option} {data.example}" for _, data in needs)
        print(f"not in any suite (they need your data): {', '.join(n for n, _ in needs)} (run {how})")
    if timer is not None:
        print(timer.note())
    return 0


class _SuiteTimer(NamedTuple):
    """`opt-audit suites`' estimates: the loaded model and its calibration on this device."""

    backend: Backend
    calibration: Calibration
    device: str
    model: str
    load_seconds: float  # the model and the scorer, loaded as a run loads them
    token_budget: int  # as a run on this device would choose it: generation batches are planned with it

    def probe(self, requests: Sequence[Request], texts: int) -> tuple[Estimate, int]:
        """One probe's estimate (its `texts` through the toxicity scorer included), from a sample of its
        requests scaled to all of them; and how many requests of other kinds it leaves out."""
        from audit.progress import Estimate, decode_batches, estimate, request_work, sample_requests
        from audit.types import Generate, LogLikelihood, dedupe

        unique = dedupe(requests)
        lls = [r for r in unique if isinstance(r, LogLikelihood)]
        gens = [r for r in unique if isinstance(r, Generate)]
        sample = sample_requests(lls)  # a large probe's log-likelihoods: a sample, scaled
        ll = estimate([request_work(self.backend, r) for r in sample], 0, self.calibration,
                      scale=len(lls) / max(1, len(sample)))
        gen = estimate([request_work(self.backend, r) for r in gens], texts, self.calibration,
                       batches=decode_batches(self.backend, gens, self.token_budget))
        both = Estimate(ll.tokens + gen.tokens, gen.new_tokens, texts, ll.seconds + gen.seconds, gen.scoring_seconds)
        return both, len(unique) - len(lls) - len(gens)  # other kinds (heads, embeddings): not timed

    def note(self) -> str:
        """What the estimates rest on: the calibration's numbers."""
        c = self.calibration
        return (f"time estimates: {self.model} on {self.device}, from a {c.seconds:.1f} s calibration: "
                f"{c.seconds_per_token * 1e3:.3f} ms per log-likelihood or prompt token, "
                f"{c.seconds_per_step * 1e3:.1f} ms per decode step + {c.seconds_per_row_step * 1e3:.2f} ms per "
                f"row of the batch (a generated token: {c.seconds_per_new_token(8) * 1e3:.1f} ms in a batch of 8 "
                f"rows, {c.seconds_per_new_token(64) * 1e3:.1f} ms in one of 64), "
                f"{(c.seconds_per_text or 0.0) * 1e3:.2f} ms per text for the embedded toxicity scorer "
                f"(a run that uses Detoxify scores at its own rate; VADER sentiment is not counted). An "
                f"estimate: padding, batch sizes and other load on the machine change the real time.")


def _suite_timer(model: str, device: str) -> _SuiteTimer:
    """Load the model and the embedded toxicity scorer, and calibrate them (a few seconds)."""
    import time as _time

    from audit.backends.budget import choose_token_budget
    from audit.backends.registry import load_backend
    from audit.contract import ModelSpec, ScorerSpec
    from audit.progress import calibrate
    from audit.scoring.registry import load_scorer

    start = _time.perf_counter()
    backend = load_backend(ModelSpec(model, device=device))
    scorer = load_scorer(ScorerSpec("embedded"))
    load_seconds = _time.perf_counter() - start
    calibration = calibrate(backend, scorer)
    facts = backend.describe()
    budget = choose_token_budget(None, backend).tokens
    return _SuiteTimer(backend, calibration, str(facts.get("device", device)), model, load_seconds, budget)


def _duration(seconds: float) -> str:
    """Seconds, minutes and seconds, or hours and minutes: an estimate has no decimals."""
    s = max(0, round(seconds))
    if s < 120:
        return f"{s} s"
    return f"{s // 60} min {s % 60:02d} s" if s < 7200 else f"{s // 3600} h {s % 3600 // 60:02d} min"


def cmd_scorers(args: argparse.Namespace) -> int:
    from audit.scoring.registry import SCORERS, load_scorer

    if args.scorers_command in (None, "list"):
        for name in SCORERS:
            print(name)
        return 0
    if args.scorers_command == "validate":
        from audit.scoring.validity import format_validity, validate_scorer

        scorer = load_scorer(_scorer_spec(args))
        record = validate_scorer(scorer, bundled_scorer_data(), out_path=args.out)
        print(format_validity(record))
        if args.out:
            print(f"validity record: {args.out}")
        return 0
    if args.scorers_command == "train-embedded":
        from audit.scoring.embedded import DEFAULT_HEAD
        from audit.scoring.train_embedded import train_embedded_head

        if args.out.resolve() == Path(DEFAULT_HEAD).resolve():
            raise AuditError(f"--out {args.out}: that is the installed scorer head; write a copy elsewhere")
        out = train_embedded_head(args.out, bundled_scorer_data(), seed=args.seed)
        print(f"wrote embedded scorer head to {out}")
        return 0
    raise AuditError(f"unknown scorers action {args.scorers_command!r}")


def cmd_gate(args: argparse.Namespace) -> int:
    from audit.gate import check_policy, gate_paths, run_candidate
    from audit.gate_policy import load_policy
    from audit.gate_report import format_console, write_outputs
    from audit.store import load_run

    if (args.candidate is None) == (args.candidate_model is None):
        raise AuditError("give exactly one of --candidate RUN_DIR or --candidate-model M")
    policy = load_policy(args.policy)
    candidate = args.candidate
    if args.candidate_model is not None:
        try:
            baseline = load_run(args.baseline)
        except AuditError as e:
            raise AuditError(f"--baseline: {e}") from None
        check_policy(policy, baseline, baseline)  # a bad rule fails before the model runs
        candidate = run_candidate(baseline, args.candidate_model, args.out, revision=args.candidate_revision,
                                  progress=not args.no_progress, build=build_probes)
    result = gate_paths(args.baseline, candidate, policy)
    print(format_console(result))
    for path in write_outputs(result, junit=args.junit, markdown=args.markdown):
        print(f"wrote {path}")
    return result.exit_code


def bundled_full_size(run, probe: str, effective: int) -> int:
    """Items in a probe's whole data set, for lm-eval's n-samples "original": the bundled data, or
    the user's --data file when the run read one and it is still there (else the run's own count)."""
    from probes.loading import ProbeConfig
    from probes.registry import build_probe

    spec = run.manifest.get("spec") or {}
    overrides = dict((str(p), str(f)) for p, f in (spec.get("data") or ()))
    data = Path(overrides[probe]) if probe in overrides else None
    if data is not None and not data.exists():
        return effective
    return len(build_probe(probe, ProbeConfig(data=data)))


def cmd_export(args: argparse.Namespace) -> int:
    from audit.export import export_run
    from reports.describe import registered_info

    done = export_run(args.run, args.format, args.out, full_size=bundled_full_size, registered=registered_info)
    for note in done.notes:
        print(f"note: {note}")
    what = f"{len(done.written)} metrics" if done.format == "lm-eval" else f"{len(done.written)} rows"
    print(f"wrote {done.path} ({what})")
    return 0


def cmd_organisms(args: argparse.Namespace) -> int:
    from audit.organisms import ORGANISMS, build_organisms
    from audit.pinning import sha256_file

    if args.organisms_command != "build":
        raise AuditError("organisms: expected an action: build")
    names = tuple(n.strip() for n in args.only.split(",") if n.strip()) if args.only else tuple(ORGANISMS)
    built = build_organisms(names, args.out, rebuild=args.rebuild, progress=not args.no_progress,
                            corpora=bundled_corpora())
    for name, path in built.items():
        print(f"{name}: {path} (model.safetensors sha256 {sha256_file(path / 'model.safetensors')})")
    return 0


def cmd_tiny(args: argparse.Namespace) -> int:
    from audit.pinning import sha256_file
    from audit.tiny import build_tiny_model

    out = build_tiny_model(args.dir)
    print(f"wrote tiny-opt to {out} (model.safetensors sha256 {sha256_file(out / 'model.safetensors')})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; whatever goes wrong, the user gets one line on stderr, never a traceback.

    Exit 2: a user error (AuditError, a refused command line, a file that cannot be written: a
    full disk names its path). Exit 1: a bug, shown as its exception type and message with a hint
    to rerun with `--debug`, which (anywhere on the line) shows the traceback instead. The gate
    exits 2 on a bug too, since its 1 means "regression". InputWarnings print as one
    `opt-audit: warning:` line each.
    """
    import warnings

    from audit.errors import InputWarning
    from audit.threads import prefer_sleeping_waits

    prefer_sleeping_waits()  # before anything imports torch: a shared core must not be spun on
    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = _pop_debug(args_list)
    command = None
    with warnings.catch_warnings():
        warnings.simplefilter("always", InputWarning)
        warnings.showwarning = _warning_printer(warnings.showwarning)
        try:
            parser = build_parser()
            args = parser.parse_args(args_list)
            command = args.command
            if command is None:
                parser.print_help()
                return 2
            return _dispatch(parser, args)
        except AuditError as e:
            if debug:
                import traceback

                traceback.print_exc()
            _error_line(str(e))
            return 2
        except KeyboardInterrupt:
            print("opt-audit: interrupted; rerun the same command to resume from the cache", file=sys.stderr)
            return 130
        except OSError as e:  # the environment, not a bug: a full disk, a permission, a vanished file
            if debug:
                raise
            where = f"{e.filename}: " if e.filename else ""
            _error_line(f"{where}{e.strerror or e}")
            return 2
        except Exception as e:  # noqa: BLE001 - the last line of defence against a traceback
            if debug:
                raise
            _error_line(f"internal error: {type(e).__name__}: {e} (a bug in opt-audit; rerun with --debug "
                        "for the traceback and report it)")
            return 2 if command == "gate" else 1


def _pop_debug(argv: list[str]) -> bool:
    """Remove `--debug` from anywhere before a `--` (a global flag no subcommand declares, so
    --help stays as it was); True when it was there."""
    end = argv.index("--") if "--" in argv else len(argv)
    found = "--debug" in argv[:end]
    argv[:end] = [a for a in argv[:end] if a != "--debug"]
    return found


def _error_line(message: str) -> None:
    """One line on stderr: no control character or line break from a file name can forge another."""
    from audit.textsafe import one_line

    print(f"opt-audit: error: {one_line(message)}", file=sys.stderr)


def _warning_printer(default):
    """showwarning that prints an InputWarning as one `opt-audit: warning:` line, others as usual."""
    from audit.errors import InputWarning
    from audit.textsafe import one_line

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001 - warnings' signature
        if issubclass(category, InputWarning):
            print(f"opt-audit: warning: {one_line(message)}", file=sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    return show


def _dispatch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """The command's function and its exit code."""
    _quiet_libraries()
    commands: dict[str, Callable[[argparse.Namespace], int]] = {
        "run": cmd_run, "probes": lambda _: cmd_probes(), "suites": cmd_suites, "report": cmd_report,
        "card": cmd_card, "dashboard": cmd_dashboard, "gate": cmd_gate, "export": cmd_export,
        "organisms": cmd_organisms, "tiny-model": cmd_tiny, "scorers": cmd_scorers}
    if args.command not in commands:
        parser.error(f"unknown command {args.command!r}")
    return commands[args.command](args)


def cmd_dashboard(args: argparse.Namespace) -> int:
    from dashboards.launch import launch

    return launch(args.runs_dir, args.port)


def _quiet_libraries() -> None:
    """Keep the console for opt-audit's own progress bar, table and error line: a library's
    deprecation notice (transformers 5.24 printed one per forward call) is for developers, who see
    it under pytest and `make test-latest`, not for the user's stderr."""
    import warnings

    for category in (FutureWarning, DeprecationWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=category)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
