"""The `show_doc` renderer of the dynblocks docs: nbdev's markdown plus fastcore's docments table (see nbs/98_showdoc.ipynb).

A documentation tool, not part of the library: `pyproject.toml` names it under `[tool.nbdev]`, and `dev.sh` puts this
folder on the virtual environment's path."""
from fastcore.docments import DocmentTbl
from nbdev.showdoc import BasicMarkdownRenderer

class DocTableRenderer(BasicMarkdownRenderer):
    "nbdev's `show_doc` markdown, with fastcore's docments table of the parameters under the docstring"
    def _repr_markdown_(self):
        md = super()._repr_markdown_()
        try: tbl = DocmentTbl(self.sym)._repr_markdown_()
        except Exception: tbl = ''  # properties and other objects without a signature: nothing to tabulate
        return md + ('\n\n' + tbl if tbl else '')
