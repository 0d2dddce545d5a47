#!/usr/bin/env python3
"""Print one value of a YAML file: a list space-separated, a scalar as is.

    utils/yaml_get.py conf/corpus.yaml corpus.languages      # -> en de es it ru pl ga
"""
import sys

import yaml


def main(argv):
    if len(argv) != 2:
        sys.exit("usage: yaml_get.py FILE DOTTED.KEY")
    path, key = argv
    with open(path, encoding="utf-8") as f:
        node = yaml.safe_load(f)
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            sys.exit(f"{path}: no key '{key}'")
        node = node[part]
    print(" ".join(str(v) for v in node) if isinstance(node, list) else node)


if __name__ == "__main__":
    main(sys.argv[1:])
