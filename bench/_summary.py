"""One machine-readable line per measured ratio, collected by bench/run_all.sh.

Each bench prints its own human table, then ``summary(name, ratio, meaning)`` lines of the form
``RATIO<TAB>name<TAB>value<TAB>meaning``.
"""


def summary(name: str, value: float, meaning: str = "") -> None:
    print(f"RATIO\t{name}\t{value:.3f}\t{meaning}", flush=True)
