"""S3's XML answers (listings, errors) read without caring about namespaces.

AWS answers in ``http://s3.amazonaws.com/doc/2006-03-01/``; S3-compatible
stores use another (s3rver: ``http://doc.s3.amazonaws.com/2006-03-01/``),
none at all, or a prefix (``<s3:Code>``). botocore matches element names
only, so every store its users point it at works: so do we. Pure code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from xml.etree import ElementTree


class NotXML(ValueError):
    """A body that is not well-formed XML (its message says where)."""


def parse_xml(body: bytes) -> ElementTree.Element:
    """``body`` parsed, every tag stripped of its ``{namespace}``.

    ``xml.etree`` is imported here, on the first answer to parse (a
    listing, an error): a download that gets neither never loads it.

    Raises:
        NotXML: ``body`` is not well-formed XML.

    Example:
        >>> parse_xml(b'<a xmlns="urn:x"><b>1</b></a>').findtext("b")
        '1'
    """
    from xml.etree import ElementTree

    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as exc:
        raise NotXML(str(exc)) from None
    for element in root.iter():
        tag = element.tag
        if isinstance(tag, str) and tag.startswith("{"):
            element.tag = tag.rpartition("}")[2]
    return root
