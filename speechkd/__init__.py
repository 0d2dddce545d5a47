"""speechkd: knowledge distillation and pruning for multilingual self-supervised speech models."""
__version__ = "0.1.0"
