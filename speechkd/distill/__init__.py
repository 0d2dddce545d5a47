"""Knowledge distillation: losses (:mod:`.losses`, :mod:`.l2s`, :mod:`.pad`), student construction
(:mod:`.student`), the paired teacher/student data (:mod:`.data`) and the distillation task (:mod:`.train`)."""
