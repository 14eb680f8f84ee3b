"""The help compiler: platyPS (v1) markdown pages -> a help model -> MAML, as New-ExternalHelp writes it.

Three steps kept apart: `markdown` parses a page into sections, `model` builds the command's help
(parameters, syntax items, examples) from them, `maml` renders the model. `text` holds platyPS's
rules for turning markdown prose into MAML paragraphs, quirks included.
"""
