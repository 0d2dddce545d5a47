"""Knowledge distillation: losses (:mod:`.losses`, :mod:`.l2s`, :mod:`.pad`) and student construction
(:mod:`.student`)."""
