"""Sandboxed DOCX rendering of correspondence templates (docxtpl syntax): inspect, compile once, render many.

Pure: no database, no web framework. The caller caches `CompiledTemplate`s keyed by template version, block
versions and rules, builds contexts with `make_context`, and converts the DOCX output to PDF elsewhere.
"""

from correspondence.rendering.compiler import CompiledTemplate, compile_template, inspect_template
from correspondence.rendering.model import (
    RESERVED,
    BatchItem,
    BlockSource,
    InlineImageData,
    RenderedBatch,
    Rule,
    TemplateInfo,
    make_context,
)
from correspondence.rendering.render import BOOKMARK_PREFIX, customer_locale, render_many, render_one
from correspondence.rendering.sandbox import check_condition

__all__ = [
    "BOOKMARK_PREFIX", "RESERVED", "BatchItem", "BlockSource", "CompiledTemplate", "InlineImageData",
    "RenderedBatch", "Rule", "TemplateInfo", "check_condition", "compile_template", "customer_locale",
    "inspect_template", "make_context", "render_many", "render_one",
]
