"""Parsing XML that other people wrote (IAM-OnDB stroke files, InkML) without the dangers of XML.

The standard library parses after a check that refuses any document type declaration: that rules out
entity-expansion bombs and external entities (what ``defusedxml`` guards against) without a dependency. Files are
size-checked before they are read.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
import xml.parsers.expat
from pathlib import Path

from lstm_asr.errors import CorpusError

MAX_XML_BYTES = 50_000_000  # a text line is tens of kB; anything this large is not a stroke file


def _refuse_dtd(*_args) -> None:
    raise ValueError("document type declarations (DTD) are refused: entities could expand or load external files")


def parse_xml(path: str | Path, data: bytes | None = None) -> ET.Element:
    """Parse an XML file safely: no DTD, hence no entity expansion (XML bombs) and no external entities.

    Every problem is a :class:`CorpusError` naming the file (malformed XML, a DTD, unreadable file).
    """
    path = Path(path)
    if data is None:
        try:
            if path.stat().st_size > MAX_XML_BYTES:
                raise CorpusError(path, f"file larger than {MAX_XML_BYTES // 1_000_000} MB")
            data = path.read_bytes()
        except FileNotFoundError:
            raise CorpusError(path, "file not found") from None
        except OSError as exc:
            raise CorpusError(path, f"cannot read ({exc.strerror or exc})") from None
    check = xml.parsers.expat.ParserCreate()
    check.StartDoctypeDeclHandler = _refuse_dtd
    check.EntityDeclHandler = _refuse_dtd
    check.ExternalEntityRefHandler = _refuse_dtd
    try:
        check.Parse(data, True)
    except ValueError as exc:
        raise CorpusError(path, str(exc)) from None
    except LookupError as exc:  # <?xml encoding="..."?> naming no codec Python knows (found by tests/test_fuzz.py)
        raise CorpusError(path, f"malformed XML ({exc})") from None
    except xml.parsers.expat.ExpatError as exc:
        raise CorpusError(path, f"malformed XML ({xml.parsers.expat.ErrorString(exc.code)}, line {exc.lineno})") \
            from None
    return ET.fromstring(data)
