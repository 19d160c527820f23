"""Sandboxed DOCX rendering of correspondence templates (docxtpl syntax): inspect, compile once, render many.

Pure: no database, no web framework. The caller checks templates in with `inspect_template` (syntax, blocks,
slots, variables for the schema check), caches `compile_template` results keyed by template version, block
versions and rules, builds contexts with `make_context`, and converts the DOCX output to PDF elsewhere.

Decisions, each detailed in its module: undefined values print as nothing but fail when iterated, computed with
or formatted (`sandbox`); blocks and slots are expanded at compile time and may not nest (`blocks`); images are
named at compile time or given in the data as `InlineImageData` (`images`); `render_many` refuses templates whose
headers, footers or notes contain Jinja (`render`); what a template may make and print is bounded so a draft
cannot exhaust the server's memory, though not its CPU time (`sandbox`). MAX_TEMPLATE_BYTES (20 MiB) is the
largest template or block file, for the compiler and for check-in alike.
"""

from correspondence.rendering.checks import check_condition
from correspondence.rendering.compiler import MAX_TEMPLATE_BYTES, CompiledTemplate, compile_template, inspect_template
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

__all__ = [
    "BOOKMARK_PREFIX", "MAX_TEMPLATE_BYTES", "RESERVED", "BatchItem", "BlockSource", "CompiledTemplate",
    "InlineImageData", "RenderedBatch", "Rule", "TemplateInfo", "check_condition", "compile_template",
    "customer_locale", "inspect_template", "make_context", "render_many", "render_one",
]
