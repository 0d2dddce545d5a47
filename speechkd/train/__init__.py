"""Training: one generic :class:`~speechkd.train.trainer.Trainer` plus task helpers (HuBERT, CTC)."""
