"""speechkd: compress multilingual self-supervised speech models (distillation and pruning recipes)."""
from setuptools import find_packages, setup

# One console script per stage verb; each is a thin CLI over a library function (speechkd/bin/<verb>.py).
VERBS = [
    "synth_corpus", "phonemize", "align", "shuffle_phones", "compute_fbank", "compute_cmvn",
    "pretrain", "distill", "finetune", "prune", "decode", "score", "export", "import_checkpoint",
    "make_results", "validate_data_dir",
]

setup(
    name="speechkd",
    version="0.1.0",
    description="Knowledge distillation and language-specific pruning for multilingual SSL speech models",
    long_description=open("README.md", encoding="utf-8").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["speechkd", "speechkd.*"]),
    install_requires=[
        "torch>=2.1",  # left open: users bring their own CUDA build
        "numpy>=1.24,<3",
        "scipy>=1.10",
        "soundfile>=0.12",
        "kaldiio>=2.18,<3",
        "jiwer>=3.0,<5",
        "phonemizer>=3.2,<4",
        "sentencepiece>=0.1.99,<0.3",
        "transformers>=4.40",
        "safetensors>=0.4",
        "tqdm>=4.60",
        "tensorboard>=2.12",
        "PyYAML>=6.0",
        "matplotlib>=3.7",
    ],
    extras_require={
        "test": ["pytest>=8", "pytest-timeout>=2.2", "kaldi-native-fbank>=1.18"],
        "espeak": ["espeakng-loader>=0.2"],
    },
    entry_points={
        "console_scripts": [f"speechkd-{v.replace('_', '-')}=speechkd.bin.{v}:main" for v in VERBS],
    },
)
