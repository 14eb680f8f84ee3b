"""Step 3: help models -> the MAML file, laid out exactly as platyPS (.NET XDocument) writes it."""

from __future__ import annotations

import re

from lxml import etree

from .model import CommandHelp, Example, Link, Parameter, ParameterBlock, SyntaxItem, TypeEntry

MSH = "http://msh"
NS = {
    "maml": "http://schemas.microsoft.com/maml/2004/10",
    "command": "http://schemas.microsoft.com/maml/dev/command/2004/10",
    "dev": "http://schemas.microsoft.com/maml/dev/2004/10",
    "MSHelp": "http://msdn.microsoft.com/mshelp",
}
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")


def _q(name: str) -> str:
    prefix, local = name.split(":")
    return f"{{{NS[prefix]}}}{local}"


def _add(parent: etree._Element, name: str, text: str | None = None, **attributes: str) -> etree._Element:
    element = etree.SubElement(parent, _q(name))
    for key, value in attributes.items():
        element.set(_q(key.replace("__", ":")) if "__" in key else key, value)
    element.text = text
    return element


def _paras(parent: etree._Element, name: str, paragraphs: list[str] | None) -> None:
    container = _add(parent, name)
    for para in paragraphs or []:
        _add(container, "maml:para", para)


def document(commands: list[CommandHelp], description_tag: str = "maml:description") -> etree._Element:
    """`description_tag` is maml:Description for pages built by platyPS 0.14.0 (its parameters used it)."""
    root = etree.Element("helpItems", nsmap={None: MSH})
    root.set("schema", "maml")
    for command in commands:
        root.append(_command(command, description_tag))
    return root


def _command(help: CommandHelp, description_tag: str) -> etree._Element:
    element = etree.Element(_q("command:command"), nsmap=NS)
    details = _add(element, "command:details")
    _add(details, "command:name", help.name)
    _add(details, "command:verb", help.verb)
    _add(details, "command:noun", help.noun)
    _paras(details, "maml:description", help.synopsis)
    _paras(element, "maml:description", help.description)
    syntax = _add(element, "command:syntax")
    for item in help.syntax:
        _syntax_item(syntax, help.name, item, description_tag)
    parameters = _add(element, "command:parameters")
    for parameter in help.parameters:
        _parameter(parameters, parameter, parameter.first, description_tag, in_syntax=False)
    _types(element, "command:inputTypes", "command:inputType", help.inputs)
    _types(element, "command:returnValues", "command:returnValue", help.outputs)
    alerts = _add(element, "maml:alertSet")
    _paras(alerts, "maml:alert", help.notes)
    examples = _add(element, "command:examples")
    for example in help.examples:
        _example(examples, example)
    links = _add(element, "command:relatedLinks")
    for link in help.links:
        _link(links, link)
    return element


def _syntax_item(parent: etree._Element, name: str, item: SyntaxItem, description_tag: str) -> None:
    element = _add(parent, "command:syntaxItem")
    _add(element, "maml:name", name)
    for parameter, block in item.parameters:
        _parameter(element, parameter, block, description_tag, in_syntax=True)


def _parameter(parent: etree._Element, parameter: Parameter, block: ParameterBlock, description_tag: str,
               in_syntax: bool) -> None:
    element = _add(parent, "command:parameter",
                   required="true" if block.required else "false",
                   variableLength="true",
                   globbing="true" if block.get("accept wildcard characters").lower() == "true" else "false",
                   pipelineInput=block.get("accept pipeline input") or "false",
                   position=block.position,
                   aliases=", ".join(block.aliases) or "none")
    _add(element, "maml:name", parameter.name)
    _paras(element, description_tag, parameter.description)
    if in_syntax and block.accepted_values:
        group = _add(element, "command:parameterValueGroup")
        for value in block.accepted_values:
            _add(group, "command:parameterValue", value, required="false", command__variableLength="false")
    if not (in_syntax and block.is_switch):
        required = "false" if block.get("type").lower() in ("switch", "switchparameter") else "true"
        _add(element, "command:parameterValue", block.type_name, required=required, variableLength="false")
    dev_type = _add(element, "dev:type")
    _add(dev_type, "maml:name", block.type_name)
    _add(dev_type, "maml:uri")
    default = block.get("default value") or "None"
    if block.is_switch and default.lower() in ("", "none"):
        default = "False"
    _add(element, "dev:defaultValue", default)


def _types(parent: etree._Element, container: str, name: str, entries: list[TypeEntry]) -> None:
    element = _add(parent, container)
    for entry in entries:
        item = _add(element, name)
        dev_type = _add(item, "dev:type")
        _add(dev_type, "maml:name", entry.name)
        _paras(item, "maml:description", entry.description)


def example_title(title: str) -> str:
    if not title.strip() or len(title) >= 62:
        return title
    dashes = "-" * ((64 - len(title) - 2) // 2)
    return f"{dashes} {title} {dashes}"


def _example(parent: etree._Element, example: Example) -> None:
    element = _add(parent, "command:example")
    _add(element, "maml:title", example_title(example.title))
    _add(element, "dev:code", example.code)
    _paras(element, "dev:remarks", example.remarks)


def _link(parent: etree._Element, link: Link) -> None:
    element = _add(parent, "maml:navigationLink")
    _add(element, "maml:linkText", link.text)
    _add(element, "maml:uri", link.uri if _SCHEME.match(link.uri) else "")


# ---------------------------------------------------------------- serialisation, as XDocument does it

def serialize(root: etree._Element) -> bytes:
    """UTF-8 with a BOM, LF line ends (platyPS on Linux), no newline after the last line."""
    lines = ['<?xml version="1.0" encoding="utf-8"?>']
    _write(root, 0, lines)
    return "\ufeff".encode() + "\n".join(lines).replace("\u00a0", " ").encode("utf-8")


def _name(element: etree._Element) -> str:
    qname = etree.QName(element)
    prefix = element.prefix
    return f"{prefix}:{qname.localname}" if prefix else qname.localname


def _attributes(element: etree._Element) -> str:
    """The element's own attributes, then the namespaces it declares (in the order platyPS writes them)."""
    own = []
    for key, value in element.attrib.items():
        qname = etree.QName(key)
        prefix = next((p for p, u in NS.items() if u == qname.namespace), None)
        own.append(f'{prefix + ":" if prefix else ""}{qname.localname}="{_escape_attribute(value)}"')
    parent = element.getparent()
    inherited = parent.nsmap if parent is not None else {}
    declared = [(p, u) for p, u in element.nsmap.items() if inherited.get(p) != u]
    order = [None, *NS]
    declared.sort(key=lambda pair: order.index(pair[0]))
    own += [f'xmlns{":" + p if p else ""}="{_escape_attribute(u)}"' for p, u in declared]
    return "".join(" " + part for part in own)


def _write(element: etree._Element, depth: int, lines: list[str]) -> None:
    indent = "  " * depth
    head = f"{indent}<{_name(element)}{_attributes(element)}"
    children = list(element)
    if children:
        lines.append(head + ">")
        for child in children:
            _write(child, depth + 1, lines)
        lines.append(f"{indent}</{_name(element)}>")
    elif element.text is None:
        lines.append(head + " />")
    else:
        lines.append(f"{head}>{_escape_text(element.text)}</{_name(element)}>")


def _escape_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _escape_attribute(text: str) -> str:
    return _escape_text(text).replace('"', "&quot;")
