"""The help compiler: platyPS markdown pages (v1, and v2's dialect) -> a help model -> MAML, as
platyPS v1's New-ExternalHelp writes it.

Three steps kept apart: `markdown` parses a page into sections (finding blocks as platyPS's scanner
does), `model` builds each command's help (parameters, syntax items, examples) from them, with
`params` reading the parameter metadata blocks of either format, and `maml` renders the model.
`text` holds platyPS's rules for turning markdown prose into MAML paragraphs, quirks included;
`build` compiles a folder page by page.
"""
