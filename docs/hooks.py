"""mkdocs hooks (``hooks:`` in mkdocs.yml).

- Refuse to build from stale generated references: ``docs/reference/*.md`` must be what ``docs/gen_reference.py``
  writes from the recipe schema and the typer app now.
- Add two files that live outside ``docs/`` as pages, read where they are (never copied, so never stale):
  ``ARCHITECTURE.md`` as ``architecture.md`` and ``bench/RESULTS.md`` as ``results.md``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

DOCS = Path(__file__).resolve().parent
REPO = DOCS.parent
OUTSIDE_PAGES = {"architecture.md": REPO / "ARCHITECTURE.md", "results.md": REPO / "bench" / "RESULTS.md"}


def on_pre_build(config, **kwargs) -> None:
    for path in (str(REPO), str(DOCS)):
        if path not in sys.path:
            sys.path.insert(0, path)
    import gen_reference

    stale = gen_reference.stale_pages()
    if stale:
        names = ", ".join(str(p.relative_to(REPO)) for p in stale)
        raise PluginError(f"{names}: stale (the recipe schema or the CLI changed); regenerate with "
                          "PYTHONPATH=. python docs/gen_reference.py")


def on_files(files, config, **kwargs):
    for uri, source in OUTSIDE_PAGES.items():
        files.append(File.generated(config, uri, abs_src_path=str(source)))
    return files
