"""Which folder of the repository each of rlkit's import names comes from (the rest of the
package's metadata is in pyproject.toml). The folders are fixed; the names installed into
site-packages are rlkit's own (``rlkit_exercises`` from ``exercises/``), never generic ones."""

from pathlib import Path

from setuptools import find_namespace_packages, setup

HERE = Path(__file__).resolve().parent
#: import names of top-level folders: ``rlkit_X`` comes from the folder ``X`` when there is
#: no folder of its own name
TOP_LEVEL = ("rlkit", "rlkit_exercises", "rlkit_grader")
#: the built-in plugins, each from plugins/<name>
PLUGINS = ("rlkit_course", "rlkit_cartpole", "rlkit_dpo")


def folder_of(name: str) -> str:
    if name in PLUGINS:
        return f"plugins/{name}"
    return name if (HERE / name).is_dir() else name.removeprefix("rlkit_")


packages = []
package_dir = {}
for name in (*TOP_LEVEL, *PLUGINS):
    folder = folder_of(name)
    packages.append(name)
    package_dir[name] = folder
    for sub in find_namespace_packages(str(HERE / folder)):
        if not all(part.isidentifier() and not part.startswith("__") for part in sub.split(".")):
            continue  # __pycache__, data folders such as assets/tiny-polite-lm
        packages.append(f"{name}.{sub}")
        package_dir[f"{name}.{sub}"] = f"{folder}/{sub.replace('.', '/')}"

setup(packages=packages, package_dir=package_dir)
