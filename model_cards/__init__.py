"""Hugging Face model cards with model-index results, built from run directories (through `audit.store`).

    build         build_card(run, info) -> text (results right after the intro); results_section(run)
    update        update_card(run_dir, out=...): create, merge into an existing card, or --force replace;
                  backups; .eval_results files
    merge         the text edit of a merge: model-index block and the opt-audit marked section only
    eval_results  the Hub's .eval_results/*.yaml entries (only for confirmed Hub benchmark tasks)
    info          CardInfo: the human facts, from an optional card.yaml (see example_card.yaml)
    metadata      the YAML front matter: license, tags, model-index
    benchmarks    each probe's Hub identity: task type, dataset id (or none), config, split
    view          the run as the values the card shows
    escape        Markdown escaping of untrusted text
"""
