#!/usr/bin/env python3
"""Model card of the zoo text teacher (stage 10 of egs/mini_espeak/ssl): held-out MLM loss of text_ml and of the
transcript-only baseline, pool sizes, into <teacher>/card.json and <teacher>/README.md.

    local/text_card.py --root . --pool data/text_pool --train-transcripts data/text_transcripts/asr/train \
        --held-out data/text_transcripts/asr/test --teacher exp/zoo/text_ml --baseline exp/text_transcripts_only \
        --config conf/text_lm.yaml
"""
import argparse
import datetime
import json
import subprocess
from pathlib import Path

import torch
import transformers
import yaml

from speechkd.models.text_eval import evaluate_mlm

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
for a in ("--root", "--pool", "--train-transcripts", "--held-out", "--teacher", "--baseline", "--config"):
    ap.add_argument(a, required=True)
args = ap.parse_args()
root = Path(args.root)
pool = json.loads((root / args.pool / "stats.json").read_text())
held = [l.strip() for l in open(root / args.held_out, encoding="utf-8") if l.strip()]
train_tr = [l.strip() for l in open(root / args.train_transcripts, encoding="utf-8") if l.strip()]
pool_lines = set(l.strip() for l in open(root / args.pool / "text", encoding="utf-8"))
models = {"text_ml": root / args.teacher, "transcripts_only": root / args.baseline}
res = {}
for name, d in models.items():
    log = json.loads((d / "train_log.json").read_text())
    ev = evaluate_mlm(d, held, seed=0, rounds=5)
    res[name] = {"dir": str(d.relative_to(root)), "train_seconds": round(log["train_seconds"], 1),
                 "precision": log["precision"], "num_texts": log["num_texts"],
                 "final_train_loss": round(sum(log["losses"][-20:]) / 20, 4), **ev}
    print(name, json.dumps(res[name]))
card = {
    "name": "text_ml", "kind": "text teacher (masked LM, XLM-R architecture, HF format)",
    "config": args.config,
    "text_lm": yaml.safe_load(open(root / args.config))["text_lm"],
    "data": {"pool": f"{args.pool}/text", "per_language": {k: v for k, v in pool.items() if k not in ("total", "excluded")},
             "total": pool["total"], "excluded_normalised_sentences": pool["excluded"],
             "transcripts_train": {"sentences": len(train_tr), "words": sum(len(l.split()) for l in train_tr)},
             "ratio_words_vs_transcripts": round(pool["total"]["words"] / sum(len(l.split()) for l in train_tr), 1),
             "held_out_in_pool": sum(l in pool_lines for l in held),
             "transcripts_train_in_pool": sum(l in pool_lines for l in train_tr)},
    "held_out": {"text": args.held_out, "sentences": len(held), "mask_seed": 0, "rounds": 5,
                 "mask_prob": 0.15},
    "models": res,
    "environment": {"date": datetime.date.today().isoformat(), "torch": torch.__version__,
                    "transformers": transformers.__version__,
                    "git": subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                          cwd=root).stdout.strip(), "threads": 1},
}
out = root / args.teacher / "card.json"
out.with_suffix(".tmp").write_text(json.dumps(card, indent=1, ensure_ascii=False) + "\n")
out.with_suffix(".tmp").replace(out)
print(json.dumps(card["data"]["total"]), card["data"]["ratio_words_vs_transcripts"], card["data"]["held_out_in_pool"], card["data"]["transcripts_train_in_pool"])

# ---- README (model card)
c, m = card, card["models"]
rows = "\n".join(f"| {l} | {v['sentences']:,} | {v['words']:,} | " + " / ".join(
    f"{v['by_source'].get(s, {}).get('words', 0):,}" for s in ("fortunes", "man", "gettext")) + " |"
    for l, v in c["data"]["per_language"].items())
def mrow(k, label):
    r = m[k]
    return (f"| {label} | {r['num_texts']:,} | {r['vocab_size']:,} | {r['num_params']/1e6:.2f} M | {r['train_seconds']:.0f} s "
            f"| {r['loss']:.3f} | {r['ppl']:.1f} | {r['nll_per_char']:.3f} | {r['bits_per_char']:.3f} |")
cfg = c["text_lm"]
readme = f"""# Zoo text teacher `text_ml`: mini multilingual masked LM trained outside the speech transcripts

XLM-R architecture (`XLMRobertaForMaskedLM`, Hugging Face format, own sentencepiece unigram vocabulary),
{cfg['n_layers']} layers x {cfg['d_model']} ({cfg['n_heads']} heads, FFN {cfg['ffn_dim']}), vocabulary {m['text_ml']['vocab_size']}, {m['text_ml']['num_params']:,} parameters.
Loads offline with `TextEncoder("exp/zoo/text_ml")` / `AutoModelForMaskedLM` / `AutoTokenizer`.
Config: `conf/text_lm.yaml` ({cfg['steps']} steps x batch {cfg['batch_size']}, lr {cfg['lr']}, max {cfg['max_length']} tokens,
precision {cfg['precision']} = {m['text_ml']['precision']} autocast with the loss in fp32, seed {cfg['seed']}). Numbers: `card.json`.

## Data: `data/text_pool/text` ({c['data']['total']['sentences']:,} sentences, {c['data']['total']['words']:,} words = {c['data']['ratio_words_vs_transcripts']}x the asr recipe's {c['data']['transcripts_train']['words']:,} training-transcript words)

Text installed on the machine (Debian packages, see `tools/setup.sh`), ASR-normalised (`normalize_text`), filtered to each
language's letters (no digits, markup, options, ALL-CAPS words; a stop-word check drops lines of another corpus language),
deduplicated. Excluded: the first 1500 seed-1 shuffled fortunes of every language (every mini recipe's transcripts come from
there; all 123 Irish fortunes) and every line of every mini recipe corpus's train/dev/test transcripts ({c['data']['excluded_normalised_sentences']:,} normalised sentences).
Check: {c['data']['held_out_in_pool']} of the {c['held_out']['sentences']} held-out sentences and {c['data']['transcripts_train_in_pool']} training transcripts are in the pool.

| lang | sentences | words | words from fortunes / man pages / gettext |
|---|---|---|---|
{rows}

Sources: fortunes = remaining `fortunes*` sentences; man = `manpages`, `manpages-{{de,es,it,ru,pl}}(-dev)` (roff stripped);
gettext = `msgstr` of `*/<lang>/LC_MESSAGES/*.mo` (Irish: mostly `libreoffice-l10n-ga`), English: the `msgid`s.
Irish is the small language: no Irish man pages exist in Debian and its fortunes are all transcribed; the word lists
(aspell/hunspell-ga) were not used (not sentences).

## Held-out evaluation (`speechkd-eval-text-model`)

Held-out text: the {c['held_out']['sentences']} `test` sentences of the seed-1 plan of `egs/mini_espeak/conf/corpus_default.yaml`
(in neither training set); masking seed {c['held_out']['mask_seed']}, {c['held_out']['rounds']} rounds, p = {c['held_out']['mask_prob']}, every chosen token -> `<mask>`.
The two models have different vocabularies, so the comparable number is the NLL per masked character
(`nll_per_char`, nats; `bits_per_char`); loss/ppl are per masked token of each model's own tokenizer.
Baseline `exp/text_transcripts_only`: same config and steps, trained on the {m['transcripts_only']['num_texts']:,} asr-style training transcripts only
(its sentencepiece vocabulary is capped by the small text).

| model | train texts | vocab | params | train time (1 thread) | loss/token | ppl | NLL/char | bits/char |
|---|---|---|---|---|---|---|---|---|
{mrow('text_ml', 'text_ml (text pool)')}
{mrow('transcripts_only', 'transcripts only')}

## Steps

`local/text_teacher.sh` (stage 10 of `egs/mini_espeak/ssl/run.sh`), one thread.

Environment: {c['environment']['date']}, git {c['environment']['git']}, torch {c['environment']['torch']}, transformers {c['environment']['transformers']}.
"""
tmp = root / args.teacher / "README.md.tmp"
tmp.write_text(readme)
tmp.replace(root / args.teacher / "README.md")
print(f"wrote {root / args.teacher}/README.md")
