"""The house rules a newcomer can rely on: one door to Ray's internals, no giant classes or functions."""

import ast
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RAY_INTERNALS = re.compile(r"ray\._|ray\.data\._internal|_raylet|ray\.core\.generated|gcs_client")
MAX_CLASS_LINES, MAX_FUNCTION_LINES = 130, 65


def sources(*folders: str) -> list[str]:
    found = [os.path.join(ROOT, "app.py")]
    for folder in folders:
        for where, _, names in os.walk(os.path.join(ROOT, folder)):
            found += [os.path.join(where, n) for n in names if n.endswith(".py")]
    return sorted(found)


def test_only_ray_compat_touches_rays_internals():
    leaks = [
        os.path.relpath(path, ROOT)
        for path in sources("engine", "ui", "pages")
        if "ray_compat" not in path and RAY_INTERNALS.search(open(path).read())
    ]
    assert leaks == [], f"Ray internals outside engine/ray_compat: {leaks}"


def test_no_class_or_function_is_too_long_to_read():
    long = []
    for path in sources("engine", "ui", "pages"):
        for node in ast.walk(ast.parse(open(path).read())):
            limit = {ast.ClassDef: MAX_CLASS_LINES, ast.FunctionDef: MAX_FUNCTION_LINES}.get(type(node))
            if limit and node.end_lineno - node.lineno + 1 > limit:
                long.append(
                    f"{os.path.relpath(path, ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})"
                )
    assert long == [], long
