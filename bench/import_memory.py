"""Peak memory of importing a fairseq checkpoint: plain torch.load vs torch.load(mmap=True) vs speechkd.

Writes a checkpoint in fairseq's wav2vec 2.0 layout (``{"cfg", "model"}``; XLSR-53 size by default: 24 pre-LN
layers x 1024, FFN 4096, layer-norm CNN of 512 channels, plus the quantizer / project_q / final_proj that
pre-training keeps: 1.18 GiB of fp32 weights) to a temp dir; ``--with-optimizer`` adds Adam-like state twice
the weights' size under ``last_optimizer_state``, as fairseq's pre-training checkpoints have. Then, each in a
fresh process, it reads the process's peak RSS (``VmHWM`` in /proc/self/status; ``ru_maxrss`` elsewhere) for:

* ``python + torch + speechkd``: the imports only (what every row below includes);
* ``torch.load``: the whole file read into memory (weights_only=True);
* ``torch.load(mmap=True)``: the file mapped, nothing read;
* ``speechkd import_fairseq``: the model built (SSLModel, parameters = the file's tensors);
* ``... then every weight read``: import_fairseq, then each parameter summed (its pages come into memory,
  as the first forward pass would bring them);
* ``speechkd import_huggingface`` (and ``then every weight read``): the same encoder exported once as a
  Hugging Face dir (``config.json`` + ``model.safetensors``, by speechkd's exporter) and imported from it;

and prints each peak, its ratio to the weights' size (the ``model`` entry, without optimizer state) and the
ratio of what the load adds to the first row's peak.
Issue target: import_fairseq's peak <= 1.3 x the weights, the optimizer state never materialised. The file
is deleted at the end.

    python bench/import_memory.py --with-optimizer               # XLSR-53 size: ~5 GB in the temp dir
    python bench/import_memory.py --small --with-optimizer       # 2 x 256: seconds
    python bench/import_memory.py --layers 12 --dim 768 --ffn 3072 --tmpdir /scratch
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from _common import peak_rss, summary  # noqa: E402
GiB = 2 ** 30
CASES = ("base", "load", "mmap", "import", "import_read", "import_hf", "import_hf_read")
LABELS = {"base": "python + torch + speechkd (no load)", "load": "torch.load", "mmap": "torch.load(mmap=True)",
          "import": "speechkd import_fairseq", "import_read": "speechkd import_fairseq, then every weight read",
          "import_hf": "speechkd import_huggingface (same weights, HF dir, safetensors)",
          "import_hf_read": "speechkd import_huggingface, then every weight read"}


# ------------------------------------------------------------------------------------------ checkpoint
def fairseq_cfg(args) -> dict:
    conv = f"[({args.conv_dim}, 10, 5)] + [({args.conv_dim}, 3, 2)] * 4 + [({args.conv_dim}, 2, 2)] * 2"
    return {"_name": "wav2vec2", "extractor_mode": "layer_norm", "conv_feature_layers": conv, "conv_bias": True,
            "encoder_layers": args.layers, "encoder_embed_dim": args.dim, "encoder_ffn_embed_dim": args.ffn,
            "encoder_attention_heads": args.heads, "layer_norm_first": True, "conv_pos": args.conv_pos,
            "conv_pos_groups": 16, "final_dim": args.final_dim, "logit_temp": 0.1, "mask_prob": 0.65,
            "encoder_layerdrop": 0.1, "latent_vars": 320, "latent_groups": 2, "latent_dim": 0}


def fairseq_shapes(args) -> dict:
    """key -> shape of a wav2vec 2.0 / XLSR pre-training state dict (fairseq names)."""
    c, d, f = args.conv_dim, args.dim, args.ffn
    shapes, c_in = {}, 1
    for i, k in enumerate([10, 3, 3, 3, 3, 2, 2]):
        shapes[f"feature_extractor.conv_layers.{i}.0.weight"] = (c, c_in, k)
        shapes[f"feature_extractor.conv_layers.{i}.0.bias"] = (c,)
        shapes[f"feature_extractor.conv_layers.{i}.2.1.weight"] = (c,)
        shapes[f"feature_extractor.conv_layers.{i}.2.1.bias"] = (c,)
        c_in = c
    shapes.update({"layer_norm.weight": (c,), "layer_norm.bias": (c,), "post_extract_proj.weight": (d, c),
                   "post_extract_proj.bias": (d,), "mask_emb": (d,),
                   "encoder.pos_conv.0.weight_g": (1, 1, args.conv_pos),
                   "encoder.pos_conv.0.weight_v": (d, d // 16, args.conv_pos), "encoder.pos_conv.0.bias": (d,),
                   "encoder.layer_norm.weight": (d,), "encoder.layer_norm.bias": (d,)})
    for i in range(args.layers):
        p = f"encoder.layers.{i}."
        for proj in ("q", "k", "v", "out"):
            shapes[f"{p}self_attn.{proj}_proj.weight"], shapes[f"{p}self_attn.{proj}_proj.bias"] = (d, d), (d,)
        shapes.update({f"{p}self_attn_layer_norm.weight": (d,), f"{p}self_attn_layer_norm.bias": (d,),
                       f"{p}fc1.weight": (f, d), f"{p}fc1.bias": (f,), f"{p}fc2.weight": (d, f),
                       f"{p}fc2.bias": (d,), f"{p}final_layer_norm.weight": (d,), f"{p}final_layer_norm.bias": (d,)})
    q = args.final_dim // 2  # codebook entry size (2 groups)
    shapes.update({"quantizer.vars": (1, 2 * 320, q), "quantizer.weight_proj.weight": (2 * 320, c),
                   "quantizer.weight_proj.bias": (2 * 320,), "project_q.weight": (args.final_dim, args.final_dim),
                   "project_q.bias": (args.final_dim,), "final_proj.weight": (args.final_dim, d),
                   "final_proj.bias": (args.final_dim,)})
    return shapes


def write_checkpoint(args, path: Path) -> None:
    import torch

    g = torch.Generator().manual_seed(0)
    state = {k: torch.randn(s, generator=g) * 0.02 for k, s in fairseq_shapes(args).items()}
    ckpt = {"cfg": {"model": fairseq_cfg(args), "task": {"_name": "audio_pretraining"}}, "model": state,
            "optimizer_history": [{"optimizer_name": "Adam", "num_updates": 1000}], "extra_state": {"epoch": 3}}
    if args.with_optimizer:  # fairseq's FairseqAdam: exp_avg + exp_avg_sq per parameter (2 x the weights)
        ckpt["last_optimizer_state"] = {
            "state": {i: {"step": 1000, "exp_avg": torch.empty_like(v).normal_(generator=g),
                          "exp_avg_sq": torch.empty_like(v).uniform_(generator=g)}
                      for i, v in enumerate(state.values())},
            "param_groups": [{"lr": 5e-4, "betas": (0.9, 0.98), "eps": 1e-6, "params": list(range(len(state)))}]}
    torch.save(ckpt, path)
    del ckpt, state
    from speechkd.models.convert.export_huggingface import export_huggingface
    from speechkd.models.convert.import_fairseq import import_fairseq

    enc = import_fairseq(path, kind="ssl")      # the same encoder as a HF dir, for the import_hf rows
    export_huggingface(enc, path.parent / "hf")
    print(json.dumps({"weights": sum(v.numel() * v.element_size() for v in torch.load(
        path, map_location="cpu", weights_only=True, mmap=True)["model"].values())}), flush=True)


# ------------------------------------------------------------------------------------------ worker
def worker(case: str, path: str) -> None:
    import torch

    from speechkd.models.convert.import_fairseq import import_fairseq
    from speechkd.models.convert.import_huggingface import import_huggingface

    if case == "load":
        obj = torch.load(path, map_location="cpu", weights_only=True)
    elif case == "mmap":
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    elif case in ("import", "import_read", "import_hf", "import_hf_read"):
        obj = import_huggingface(Path(path).parent / "hf", kind="ssl") if "hf" in case else import_fairseq(path)
        if case.endswith("_read"):
            with torch.no_grad():
                float(sum(p.sum() for p in obj.parameters()))
    else:
        obj = None
    print(json.dumps({"peak": peak_rss()}), flush=True)
    del obj


def _child(cmd: list) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[2:])} failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layers", type=int, default=24)
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--ffn", type=int, default=4096)
    p.add_argument("--heads", type=int, default=16)
    p.add_argument("--conv-dim", type=int, default=512, help="waveform CNN channels")
    p.add_argument("--conv-pos", type=int, default=128, help="positional conv kernel")
    p.add_argument("--final-dim", type=int, default=768)
    p.add_argument("--small", action="store_true",
                   help="quick run: 2 layers x 256, FFN 1024, CNN 128 channels, positional kernel 32")
    p.add_argument("--with-optimizer", action="store_true", help="add Adam state (2 x the weights)")
    p.add_argument("--tmpdir", default=None, help="where the checkpoint is written (default: the system's)")
    p.add_argument("--worker", choices=CASES, help=argparse.SUPPRESS)
    p.add_argument("--write", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--path", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.small:
        args.layers, args.dim, args.ffn, args.heads, args.conv_dim, args.conv_pos, args.final_dim = \
            2, 256, 1024, 4, 128, 32, 128
    if args.write:
        write_checkpoint(args, Path(args.path))
        return 0
    if args.worker:
        worker(args.worker, args.path)
        return 0
    me = [sys.executable, str(Path(__file__).resolve())]
    size = ["--layers", str(args.layers), "--dim", str(args.dim), "--ffn", str(args.ffn), "--heads", str(args.heads),
            "--conv-dim", str(args.conv_dim), "--conv-pos", str(args.conv_pos), "--final-dim", str(args.final_dim)]
    tmp = Path(tempfile.mkdtemp(prefix="import_memory.", dir=args.tmpdir))
    try:
        path = tmp / "checkpoint.pt"
        t0 = time.perf_counter()
        weights = _child(me + size + ["--write", "--path", str(path)]
                         + (["--with-optimizer"] if args.with_optimizer else []))["weights"]
        file_size = path.stat().st_size
        hf_weights = (tmp / "hf" / "model.safetensors").stat().st_size   # encoder only (no quantizer)
        print(f"checkpoint: {args.layers} layers x {args.dim}, FFN {args.ffn}, CNN {args.conv_dim}; weights "
              f"{weights / GiB:.3f} GiB, file {file_size / GiB:.3f} GiB "
              f"({'with' if args.with_optimizer else 'without'} optimizer state; written in "
              f"{time.perf_counter() - t0:.0f} s)")
        print()
        print("| load | peak RSS (GiB) | peak / weights | (peak - no load) / weights |")
        print("|---|---:|---:|---:|")
        peaks = {}
        for case in CASES:
            peaks[case] = _child(me + ["--worker", case, "--path", str(path)])["peak"]
            print(f"| {LABELS[case]} | {peaks[case] / GiB:.3f} | {peaks[case] / weights:.2f} | "
                  f"{(peaks[case] - peaks['base']) / weights:.2f} |", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    tag = f"{args.layers}x{args.dim}{', with optimizer' if args.with_optimizer else ''}"
    summary(f"import_fairseq peak RSS / weights ({tag})", peaks["import"] / weights,
            "issue target <= 1.3 (one copy of the weights at most, optimizer state never read)")
    summary(f"import_fairseq + weights read peak RSS / weights ({tag})", peaks["import_read"] / weights,
            "<= 1.3: the weights come into memory once")
    summary(f"torch.load / import_fairseq peak RSS ({tag})", peaks["load"] / peaks["import"],
            "> 1: speechkd's import needs less than a plain torch.load")
    summary(f"import_huggingface + weights read peak RSS / its weights ({tag})", peaks["import_hf_read"] / hf_weights,
            "<= 1.3: the HF dir's weights come into memory once (no initialised second copy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
