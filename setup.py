"""speechkd: compress multilingual self-supervised speech models (distillation and pruning recipes)."""
import os

from setuptools import find_packages, setup

# One console script per stage verb: every speechkd/bin/<verb>.py with a main() becomes speechkd-<verb>
# (a thin CLI over a library function).
HERE = os.path.dirname(os.path.abspath(__file__))
VERBS = sorted(
    f[:-3] for f in os.listdir(os.path.join(HERE, "speechkd", "bin"))
    if f.endswith(".py") and not f.startswith("_")
    and "def main(" in open(os.path.join(HERE, "speechkd", "bin", f), encoding="utf-8").read()
)

setup(
    name="speechkd",
    version="0.1.0",
    description="Knowledge distillation and language-specific pruning for multilingual SSL speech models",
    long_description=open(os.path.join(HERE, "README.md"), encoding="utf-8").read(),
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
