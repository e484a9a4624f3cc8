"""Text of an attached document, in sections labelled for citations, or a refusal a person understands.

- The type comes from the file name's extension, and the content must match it (magic bytes are checked before any
  parser sees the file): a PNG renamed to .pdf is refused as such, not handed to pypdf.
- Sizes are checked first: the bytes against `max_bytes`; a PDF's page count against `max_pages` before any page is
  read; a Word file's zip directory (declared sizes, compression ratios, member count) before python-docx unpacks it
  (python-docx reads every part into memory, so a zip bomb must never reach it).
- Work is bounded too, because small files within every size limit can still cost an hour of CPU or gigabytes of
  memory: each PDF page's unpacked drawing instructions (per page and per file, a stream shared by many pages counting
  on each) and text operators are measured before pypdf parses the page; a Word file's XML parts are unpacked once,
  in chunks and with a cap, before python-docx builds its tree; a CSV file's rows are counted as they are read.
  What these limits do not catch (pypdf's text extraction is quadratic in the text of a page) is for the caller's
  deadline: documents/worker.py runs this in a child process with CPU, memory and wall-clock limits.
- A MemoryError (or lxml's out-of-memory parse error) is raised as MemoryError, never reported as a damaged file: the
  worker turns it into a refusal naming its memory limit.
- Every refusal is a `DocumentRejected` whose reason is a short sentence: never a library's message, never the file's
  content.
- Labels: "page 3" (PDF, 1-based), "section “Results”" (DOCX/Markdown/HTML headings), "rows 2–51" (CSV, file line
  numbers, the header on every section), "lines 201–400" (long text files), "" (text before the first heading, or a
  short text file).
- Text is normalised: runs of spaces collapsed, lines trimmed, paragraph breaks (one blank line) kept, control
  characters dropped; sections without text are left out.

Pure Python over pypdf, python-docx and the standard library; no global state is changed (Streamlit runs sessions in
threads), and nothing here imports Streamlit.
"""
from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
import struct
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser

DOCUMENT_EXTENSIONS: tuple[str, ...] = ("pdf", "docx", "txt", "md", "csv", "html", "htm")

_KINDS = {"pdf": "pdf", "docx": "docx", "txt": "txt", "md": "md", "csv": "csv", "html": "html", "htm": "html"}
_UNSUPPORTED = "unsupported file type; attach PDF, Word (.docx), text (.txt), Markdown (.md), CSV or HTML files"
_NO_TEXT = "the document has no text"
_MB = 1_048_576

# Word files: limits on what the zip directory declares, checked before anything is decompressed.
_DOCX_MAX_MEMBERS = 10_000
_DOCX_EXPANDED_FLOOR, _DOCX_EXPANDED_CAP = 100 * _MB, 500 * _MB  # max(10 × max_bytes, 100 MB), at most 500 MB
_DOCX_RATIO, _DOCX_RATIO_FROM = 100, _MB  # a member over 1 MB may expand at most 100-fold
# Word files: the XML parts python-docx parses, unpacked for real (in chunks, stopping at the cap) before it sees them:
# its lxml tree takes 10 to 20 times the XML's size in memory, and a 3 MB file can hold 200 MB of XML at 65:1.
_DOCX_PART_MAX = 32 * _MB  # the main document part, and any other XML part
_DOCX_XML_MAX = 64 * _MB  # all XML parts together
_DOCX_TYPES_MAX = _MB  # [Content_Types].xml, read to find the main part's name

# PDF: work per page, measured on the unpacked content streams (and the forms the page's resources name) before pypdf
# parses them. A stream shared by every page counts on each (pypdf parses it again for each page).
_PDF_PAGE_CONTENT = 4 * _MB
_PDF_FILE_CONTENT = 64 * _MB
_PDF_PAGE_TEXT_OPERATORS = 20_000  # pieces of text drawn on one page; a dense page has a few thousand
_PDF_TEXT_OPERATOR = re.compile(rb"T[jJ]|[)>]\s*['\"]")  # Tj, TJ, and ' or " after a string: over-counts a little
_PDF_DRAWN_FORM = re.compile(rb"/([^\s/\[\]()<>{}%]+)\s*Do\b")  # "/Fm1 Do": an XObject (form or image) drawn

_CSV_MAX_ROWS = 100_000

_TXT_LINES, _TXT_SPLIT_OVER = 200, 250  # text files over 250 lines are cut into sections of about 200 lines
_CSV_ROWS = 50  # data rows per CSV section
_CSV_COMPACT_FROM = 1_000  # rows above which a table is written column-aware (its columns once per section)
_MAX_SECTIONS = 20_000  # headings (Markdown, HTML) per file: each becomes a labelled section, kept in memory
_TOO_MANY_SECTIONS = f"the document has more than {_MAX_SECTIONS:,} headings; the limit is {_MAX_SECTIONS:,}"
_LABEL_CHARS = 80  # headings longer than this are shortened in labels


@dataclass(frozen=True)
class Section:
    label: str  # where it is, as cited: "page 3", "section “Results”", "rows 2–51", "lines 1–200", or ""
    text: str


@dataclass(frozen=True)
class ExtractedDocument:
    name: str  # the file name as uploaded (display only)
    kind: str  # pdf | docx | txt | md | csv | html
    extension: str  # for storage: pdf, docx, txt, md, csv, html
    sha256: str  # of the original bytes
    data: bytes = field(repr=False)  # the original bytes (stored content-addressed by the app)
    sections: tuple[Section, ...] = field(repr=False)  # non-empty text only
    pages: int | None  # PDF page count, else None

    @property
    def text(self) -> str:
        return "\n\n".join(section.text for section in self.sections)


class DocumentRejected(ValueError):
    """An attached file that cannot be read; `str()` is "<file name>: <reason>", written for the person."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name, self.reason = name, reason

    def __reduce__(self):  # picklable despite the two-argument constructor
        return type(self), (self.name, self.reason)


def is_document(name: str) -> bool:
    """True when the name ends in one of DOCUMENT_EXTENSIONS (any case)."""
    return _extension(name) in _KINDS


def extract_document(name: str, data: bytes, *, max_bytes: int = 20 * 1024 * 1024, max_pages: int = 500,
                     max_rows: int = _CSV_MAX_ROWS,
                     progress: Callable[[int, int], None] | None = None) -> ExtractedDocument:
    """Check one attached file and extract its text in labelled sections; DocumentRejected says why not.

    `progress(page, pages)` is called before each PDF page is read, and once with (1, 1) before the other kinds are
    parsed; whatever it raises ends the reading."""
    data = bytes(data)
    extension = _extension(name)
    kind = _KINDS.get(extension)
    if kind is None:
        raise DocumentRejected(name, _UNSUPPORTED)
    if not data:
        raise DocumentRejected(name, "the file is empty")
    if len(data) > max_bytes:
        size, limit = readable_size(len(data), like=max_bytes), readable_size(max_bytes)
        raise DocumentRejected(name, f"the file is {'just over ' if size == limit else ''}{size}; the limit is {limit}")
    pages = None
    if kind == "pdf":
        sections, pages = _pdf_sections(name, data, max_pages, progress)
    elif kind == "docx":
        sections = _docx_sections(name, data, max_bytes, progress)
    else:
        if progress is not None:
            progress(1, 1)
        text = _decode_text(name, data, html=kind == "html")
        if kind == "csv":
            sections = _csv_sections(name, text, max_rows)
        else:
            sections = {"txt": _txt_sections, "md": _md_sections, "html": _html_sections}[kind](name, text)
    sections = tuple(section for section in sections if section.text)
    if not sections:
        raise DocumentRejected(name, _NO_TEXT)
    return ExtractedDocument(name=name, kind=kind, extension=kind, sha256=hashlib.sha256(data).hexdigest(), data=data,
                             sections=sections, pages=pages)


# --- names, sizes and signatures ------------------------------------------------------------------------------------

def _extension(name: str) -> str:
    base = re.split(r"[/\\]", name or "")[-1]
    _, dot, extension = base.rpartition(".")
    return extension.strip().lower() if dot else ""


def readable_size(size: int, *, like: int | None = None) -> str:
    """"25.3 MB", "512 KB", "1,000 bytes"; `like`: a smaller size compared with this one, whose unit is used when
    this one's is no larger (so "1,265 bytes; the limit is 1,000 bytes", not "1.2 KB; the limit is 1,000 bytes")."""
    scale = size if like is None or size >= _MB else min(size, like)
    if scale < 1024:
        return f"{size:,} bytes"
    value, unit = (size / _MB, "MB") if scale >= _MB else (size / 1024, "KB")
    return f"{value:.1f}".removesuffix(".0") + f" {unit}"


def _looks_like(data: bytes) -> str | None:
    """What a file's first bytes say it is, for refusals ("it looks like a PNG image"); None when unrecognised."""
    head = data[:16]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "a PNG image"
    if head.startswith(b"\xff\xd8\xff"):
        return "a JPEG image"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "a GIF image"
    if head.startswith(b"%PDF-"):
        return "a PDF file"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        # Names of zip members are stored in the clear: enough to tell Office files from other archives.
        if b"word/document" in data:
            return "a Word (.docx) document"
        if b"xl/workbook" in data:
            return "an Excel workbook"
        if b"ppt/presentation" in data:
            return "a PowerPoint presentation"
        return "a ZIP archive"
    if head.startswith(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"):
        return "an older Office .doc, .xls or .ppt file"
    if head.startswith(b"\x7fELF"):
        return "a program (ELF executable)"
    if head.startswith(b"MZ") and b"\x00" in data[:1024]:
        return "a Windows program (.exe)"
    if head.startswith(b"{\\rtf"):
        return "an RTF document"
    return None


def _with_look(reason: str, data: bytes, *, unless: tuple[str, ...] = ()) -> str:
    look = _looks_like(data)
    return f"{reason} (it looks like {look})" if look and look not in unless else reason


def _out_of_memory(exc: BaseException) -> bool:
    """A MemoryError, or lxml's parse error for a failed allocation (libxml2's XML_ERR_NO_MEMORY, code 2), which
    would otherwise pass for a damaged file."""
    return isinstance(exc, MemoryError) or (
        type(exc).__module__.startswith("lxml") and getattr(exc, "code", None) == 2)


# --- text normalisation ---------------------------------------------------------------------------------------------

# C0 and C1 controls except tab and newline, DEL, and invisible format characters (soft hyphen, zero-width space,
# byte-order mark) are dropped; form feeds and Unicode line/paragraph separators become newlines.
_DROP = {c: None for c in [*range(0, 9), *range(11, 32), *range(0x7F, 0xA0), 0xAD, 0x200B, 0x2060, 0xFEFF]}
_DROP.update({0x0C: "\n", 0x0B: "\n", 0x85: "\n", 0x2028: "\n", 0x2029: "\n\n"})
_SPACES = re.compile(r"[^\S\n]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def _normalise(text: str) -> str:
    """Runs of spaces collapsed, lines trimmed, at most one blank line in a row, control characters dropped."""
    text = text.replace("\r\n", "\n").replace("\r", "\n").translate(_DROP)
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _heading_label(heading: str) -> str:
    heading = _one_line(heading)
    if len(heading) > _LABEL_CHARS:
        heading = heading[:_LABEL_CHARS].rsplit(" ", 1)[0].rstrip(" ,;:.-") + "…"
    return f"section “{heading}”"


# --- text decoding --------------------------------------------------------------------------------------------------

_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
_BINARY = "this is a binary file, not text"
_CONTROL_BYTES = re.compile(rb"[\x00-\x08\x0b\x0e-\x1f\x7f]")  # controls other than \t \n \f \r
_CONTROL_CHARS = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


def _decode_text(name: str, data: bytes, *, html: bool = False) -> str:
    """UTF-8 (with or without BOM), UTF-16/32 with a BOM, an HTML file's declared charset, then cp1252 as a last
    resort for bytes with no control characters; anything else — NUL bytes, undecodable bytes, a known binary
    signature — is a binary file."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                raise DocumentRejected(name, _BINARY) from None
            return _checked_text(name, text, data)
    look = _looks_like(data)
    if b"\x00" in data or (look and "RTF" not in look):
        raise DocumentRejected(name, _with_look(_BINARY, data))
    try:
        return _checked_text(name, data.decode("utf-8"), data)
    except UnicodeDecodeError:
        pass
    declared = _META_CHARSET.search(data[:4096]) if html else None
    if declared:
        try:
            return _checked_text(name, data.decode(codecs.lookup(declared.group(1).decode("ascii")).name), data)
        except (LookupError, UnicodeDecodeError, ValueError):
            pass
    if not _CONTROL_BYTES.search(data):
        try:
            return data.decode("cp1252")
        except UnicodeDecodeError:
            pass
    raise DocumentRejected(name, _BINARY)


def _checked_text(name: str, text: str, data: bytes) -> str:
    """Decoded text with more than a stray control character in a hundred is binary after all."""
    if "\x00" in text or len(_CONTROL_CHARS.findall(text)) * 100 > len(text):
        raise DocumentRejected(name, _with_look(_BINARY, data))
    return text


# --- PDF ------------------------------------------------------------------------------------------------------------

_PDF_DAMAGED = "the PDF is damaged and cannot be read"
_PDF_PROTECTED = "the PDF is password-protected; remove the password and attach it again"
_PDF_SCANNED = "it looks scanned: no text to read (the PDF has no text layer; OCR is not supported)"


def _pdf_sections(name: str, data: bytes, max_pages: int,
                  progress: Callable[[int, int], None] | None) -> tuple[list[Section], int]:
    # Acrobat accepts a header anywhere in the first 1024 bytes (some generators prepend junk); so do we.
    if b"%PDF-" not in data[:1024]:
        look = _looks_like(data)
        what = f"it looks like {look}" if look else "its content is not a PDF"
        raise DocumentRejected(name, f"this is not a PDF file ({what})")
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, LimitReachedError, PyPdfError

    # pypdf raises all sorts on hostile or broken files (its own errors, but also KeyError, TypeError, ValueError,
    # zlib and struct errors, RecursionError on cyclic object graphs): any of them means the file cannot be read.
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            # Many PDFs are encrypted only to set permissions (no password to open them: every viewer opens them
            # silently). Those are read; anything that needs a password to open is refused.
            try:
                opened = reader.decrypt("")
            except (DependencyError, NotImplementedError, FileNotDecryptedError, PyPdfError):
                opened = 0
            if not opened:
                raise DocumentRejected(name, _PDF_PROTECTED)
        count = len(reader.pages)
    except DocumentRejected:
        raise
    except (Exception, RecursionError) as exc:
        if _out_of_memory(exc):
            raise MemoryError from None
        raise DocumentRejected(name, _PDF_DAMAGED) from None
    if count > max_pages:
        raise DocumentRejected(name, f"the PDF has {count:,} pages; the limit is {max_pages:,}")
    if count == 0:
        raise DocumentRejected(name, "the PDF has no pages")
    sections, failures, content = [], 0, 0
    for number in range(1, count + 1):
        if progress is not None:
            progress(number, count)
        try:
            page = reader.pages[number - 1]
            content += _pdf_page_content(name, number, page)
            if content > _PDF_FILE_CONTENT:
                limit = readable_size(_PDF_FILE_CONTENT)
                raise DocumentRejected(name, f"the PDF's pages unpack to more than {limit} of drawing instructions "
                                             f"(content shared by several pages counts on each); the limit is {limit}")
            text = page.extract_text() or ""
        except DocumentRejected:
            raise
        except LimitReachedError:  # one of pypdf's own limits (tokens per stream, forms per page): a hostile page
            raise DocumentRejected(name, f"page {number} of the PDF is too complex to read") from None
        except (Exception, RecursionError) as exc:
            if _out_of_memory(exc):
                raise MemoryError from None
            failures += 1  # one unreadable page (a broken font, a cyclic resource) costs that page
            continue
        text = _normalise(text)
        if text:
            sections.append(Section(f"page {number}", text))
    if not sections:
        raise DocumentRejected(name, _PDF_DAMAGED if failures else _PDF_SCANNED)
    return sections, count


def _pdf_page_content(name: str, number: int, page) -> int:
    """Unpacked bytes of the page's content streams and of the forms they draw (one level, each time it is drawn),
    checked against the per-page limits before pypdf parses any of it. pypdf unpacks no stream past the page's limit
    (its own output limits, set for this context only), and keeps what it unpacked, so extract_text does not unpack
    it again."""
    from pypdf import apply_configuration
    from pypdf.errors import LimitReachedError
    from pypdf.generic import ArrayObject, StreamObject

    limit = readable_size(_PDF_PAGE_CONTENT)
    too_big = (f"page {number} of the PDF unpacks to more than {limit} of drawing instructions; the limit is {limit} "
               "per page")
    size = operators = 0

    def measure(stream, times: int = 1) -> bytes:
        nonlocal size, operators
        most = (_PDF_PAGE_CONTENT - size) // times + 1
        try:
            with apply_configuration(zlib_maximum_output_length=most, lzw_maximum_output_length=most,
                                     run_length_maximum_output_length=most, brotli_maximum_output_length=most):
                data = stream.get_data()
        except LimitReachedError:
            raise DocumentRejected(name, too_big) from None
        size += len(data) * times
        if size > _PDF_PAGE_CONTENT:
            raise DocumentRejected(name, too_big)
        found = 0
        for found, _ in enumerate(_PDF_TEXT_OPERATOR.finditer(data), 1):
            if operators + found * times > _PDF_PAGE_TEXT_OPERATORS:  # counted only this far: the count costs little
                raise DocumentRejected(name, f"page {number} of the PDF draws its text in more than "
                                             f"{_PDF_PAGE_TEXT_OPERATORS:,} pieces; the limit is "
                                             f"{_PDF_PAGE_TEXT_OPERATORS:,} per page")
        operators += found * times
        return data

    contents = page.get("/Contents")
    contents = contents.get_object() if contents is not None else None
    streams = [item.get_object() for item in contents] if isinstance(contents, ArrayObject) else [contents]
    drawn: Counter[bytes] = Counter()
    for stream in streams:
        if isinstance(stream, StreamObject):
            drawn.update(_PDF_DRAWN_FORM.findall(measure(stream)))
    # Forms the page's resources name and its content draws ("/Fm1 Do"): resources are often shared by every page,
    # so a form counts only where it is drawn.
    resources = page.get("/Resources")
    resources = resources.get_object() if resources is not None else None
    xobjects = resources.get("/XObject") if isinstance(resources, dict) else None
    xobjects = xobjects.get_object() if xobjects is not None else None
    if drawn and isinstance(xobjects, dict):
        for key, xobject in xobjects.items():
            times = drawn.get(str(key).lstrip("/").encode("latin-1", "replace"), 0)
            xobject = xobject.get_object() if times else None
            if isinstance(xobject, StreamObject) and xobject.get("/Subtype") == "/Form":
                measure(xobject, times)
    return size


# --- Word -----------------------------------------------------------------------------------------------------------

_NOT_DOCX = "this is not a Word (.docx) file"
_DOCX_DAMAGED = "the Word file is damaged and cannot be read"
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_MC = "{http://schemas.openxmlformats.org/markup-compatibility/2006}"
# Inside a paragraph: formatting, deleted and moved-away text, field instructions and the VML duplicate of drawings
# carry no text to read.
_DOCX_SKIP = {_W + "pPr", _W + "rPr", _W + "del", _W + "moveFrom", _W + "instrText", _W + "delText",
              _W + "fldData", _MC + "Fallback"}
_HEADING_STYLE = re.compile(r"(Heading [1-9]|Title)")
_HEADING_STYLE_ID = re.compile(r"(Heading[1-9]|Title)")


def _docx_sections(name: str, data: bytes, max_bytes: int,
                   progress: Callable[[int, int], None] | None) -> list[Section]:
    if not data.startswith(b"PK\x03\x04"):
        raise DocumentRejected(name, _with_look(_NOT_DOCX, data))
    archive = _check_docx_zip(name, data, max_bytes)
    _check_docx_parts(name, archive)
    if progress is not None:
        progress(1, 1)
    import docx  # imported here: only Word files pay for python-docx and lxml

    try:
        document = docx.Document(io.BytesIO(data))
        style_names = {style.style_id: style.name for style in document.styles}
        body = document.element.body
        return _docx_body_sections(body, style_names)
    except (Exception, RecursionError) as exc:
        if _out_of_memory(exc):
            raise MemoryError from None
        raise DocumentRejected(name, _DOCX_DAMAGED) from None


def _check_docx_zip(name: str, data: bytes, max_bytes: int) -> zipfile.ZipFile:
    """The zip directory, read without decompressing anything: a Word document, of a size it is safe to unpack."""
    members = _zip_member_count(data)
    if members is not None and members > _DOCX_MAX_MEMBERS:
        raise DocumentRejected(name, f"the Word file has more than {_DOCX_MAX_MEMBERS:,} parts (a zip bomb?)")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, struct.error, UnicodeError):
        damaged = _looks_like(data) == "a Word (.docx) document"  # a truncated Word file, say
        raise DocumentRejected(name, _DOCX_DAMAGED if damaged else _NOT_DOCX) from None
    if len(infos) > _DOCX_MAX_MEMBERS:
        raise DocumentRejected(name, f"the Word file has more than {_DOCX_MAX_MEMBERS:,} parts (a zip bomb?)")
    names = {info.filename for info in infos}
    if "word/document.xml" not in names and not (
            "[Content_Types].xml" in names and any(n.startswith("word/") and n.endswith(".xml") for n in names)):
        # Word Online sometimes names the main part word/document2.xml; the content types then say which it is.
        raise DocumentRejected(name, _with_look(_NOT_DOCX, data, unless=("a ZIP archive", "a Word (.docx) document")))
    limit = min(max(10 * max_bytes, _DOCX_EXPANDED_FLOOR), _DOCX_EXPANDED_CAP)
    if sum(info.file_size for info in infos) > limit:
        raise DocumentRejected(name, f"the Word file expands to more than {readable_size(limit)} (a zip bomb?)")
    for info in infos:
        if info.file_size > _DOCX_RATIO_FROM and info.file_size > _DOCX_RATIO * max(info.compress_size, 1):
            raise DocumentRejected(name, f"the Word file expands to more than {_DOCX_RATIO} times its size in one "
                                         "part (a zip bomb?)")
    return archive


_DOCX_OVERRIDE = re.compile(rb"<(?:\w+:)?Override\b[^>]*>")
_DOCX_PART_NAME = re.compile(rb"""\bPartName\s*=\s*["']/?([^"']+)["']""")
_DOCX_MAIN_TYPE = re.compile(rb"""\bContentType\s*=\s*["'][^"']*\.main\+xml["']""")


def _check_docx_parts(name: str, archive: zipfile.ZipFile) -> None:
    """The XML parts' real unpacked sizes (the directory's sizes are a claim; zipfile does stop at them, with a CRC
    error), each unpacked in chunks up to its cap and thrown away: the main document part and every other XML part at
    most _DOCX_PART_MAX, all of them together at most _DOCX_XML_MAX."""
    main = "word/document.xml"
    try:
        if "[Content_Types].xml" in archive.NameToInfo:
            with archive.open("[Content_Types].xml") as member:
                types = member.read(_DOCX_TYPES_MAX)
            for override in _DOCX_OVERRIDE.findall(types):
                part = _DOCX_PART_NAME.search(override)
                if part and _DOCX_MAIN_TYPE.search(override):
                    main = part.group(1).decode("utf-8", "replace")
                    break
        total, part_limit = 0, readable_size(_DOCX_PART_MAX)
        for info in archive.infolist():
            if not info.filename.lower().endswith((".xml", ".rels")):
                continue
            size = _unpacked_size(archive, info, _DOCX_PART_MAX)
            if size > _DOCX_PART_MAX and info.filename == main:
                raise DocumentRejected(name, f"the Word document's text part is over {part_limit} when unpacked; the "
                                             f"limit is {part_limit}")
            if size > _DOCX_PART_MAX:
                raise DocumentRejected(name, f"a part of the Word file (styles, notes, headers or the like) is over "
                                             f"{part_limit} when unpacked; the limit is {part_limit} per part")
            total += size
            if total > _DOCX_XML_MAX:
                limit = readable_size(_DOCX_XML_MAX)
                raise DocumentRejected(name, f"the Word file's text and layout parts come to more than {limit} when "
                                             f"unpacked; the limit is {limit}")
    except DocumentRejected:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, struct.error, UnicodeError,
            NotImplementedError, RuntimeError, zlib.error, KeyError):  # bad CRC, unknown method, encrypted member…
        raise DocumentRejected(name, _DOCX_DAMAGED) from None


def _unpacked_size(archive: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> int:
    """Bytes the member unpacks to, counted 1 MB at a time; stops once past `cap` (so the result may be short of the
    full size, but is then over the cap)."""
    size = 0
    with archive.open(info) as member:
        while size <= cap:
            chunk = member.read(_MB)
            if not chunk:
                break
            size += len(chunk)
    return size


def _zip_member_count(data: bytes) -> int | None:
    """Members the end-of-central-directory record announces, read before zipfile builds an object for each."""
    end = data.rfind(b"PK\x05\x06", max(0, len(data) - 65_557))
    if end < 0 or end + 22 > len(data):
        return None
    count = struct.unpack_from("<H", data, end + 10)[0]
    if count == 0xFFFF:  # zip64: count the central directory headers instead (an upper bound)
        return data.count(b"PK\x01\x02")
    return count


def _docx_body_sections(body, style_names: dict[str, str]) -> list[Section]:
    sections: list[Section] = []
    label, blocks = "", []

    def close() -> None:
        text = _normalise("\n\n".join(blocks))
        if text:
            sections.append(Section(label, text))

    for element in _docx_blocks(body):
        if element.tag == _W + "tbl":
            blocks.append(_docx_table(element))
            continue
        text = _docx_paragraph(element)
        if _is_heading(element, style_names) and text.strip():
            close()
            label, blocks = _heading_label(text), []
        blocks.append(text)
    close()
    return sections


def _docx_blocks(container):
    """Paragraphs and tables in document order, looking inside content controls and custom XML wrappers."""
    for child in container:
        tag = child.tag
        if tag in (_W + "p", _W + "tbl"):
            yield child
        elif tag == _W + "sdt":
            content = child.find(_W + "sdtContent")
            if content is not None:
                yield from _docx_blocks(content)
        elif tag == _W + "customXml":
            yield from _docx_blocks(child)


def _docx_paragraph(paragraph) -> str:
    parts: list[str] = []
    _docx_runs(paragraph, parts)
    return "".join(parts)


def _docx_runs(element, parts: list[str]) -> None:
    for child in element:
        tag = child.tag
        if not isinstance(tag, str) or tag in _DOCX_SKIP:
            continue
        if tag == _W + "t":
            parts.append(child.text or "")
        elif tag == _W + "tab":
            parts.append("\t")
        elif tag in (_W + "br", _W + "cr"):
            parts.append("\n")
        elif tag == _W + "noBreakHyphen":
            parts.append("-")
        else:
            _docx_runs(child, parts)


def _docx_table(table) -> str:
    """One line per row, cells joined by " | " (a merged cell counts once; nested tables are flattened)."""
    lines = []
    for row in _docx_children(table, _W + "tr"):
        cells = [_one_line(" ".join(_docx_cell_blocks(cell))) for cell in _docx_children(row, _W + "tc")]
        if any(cells):
            lines.append(" | ".join(cells))
    return "\n".join(lines)


def _docx_cell_blocks(cell) -> list[str]:
    texts = []
    for element in _docx_blocks(cell):
        texts.append(_docx_table(element).replace("\n", " / ") if element.tag == _W + "tbl"
                     else _docx_paragraph(element))
    return texts


def _docx_children(element, tag: str):
    for child in element:
        if child.tag == tag:
            yield child
        elif child.tag in (_W + "sdt", _W + "customXml"):
            content = child.find(_W + "sdtContent") if child.tag == _W + "sdt" else child
            if content is not None:
                yield from _docx_children(content, tag)


def _is_heading(paragraph, style_names: dict[str, str]) -> bool:
    style = paragraph.find(f"{_W}pPr/{_W}pStyle")
    if style is None:
        return False
    style_id = style.get(_W + "val") or ""
    name = style_names.get(style_id)
    if name:
        return _HEADING_STYLE.fullmatch(name) is not None
    return _HEADING_STYLE_ID.fullmatch(style_id) is not None


# --- plain text -----------------------------------------------------------------------------------------------------

def _txt_sections(name: str, text: str) -> list[Section]:
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if len(lines) <= _TXT_SPLIT_OVER:
        return [Section("", _normalise(text))]
    sections, start = [], 0
    while start < len(lines):
        end = _txt_cut(lines, start)
        body = lines[start:end]
        filled = [i for i, line in enumerate(body) if line.strip()]
        if filled:
            first, last = start + filled[0] + 1, start + filled[-1] + 1
            sections.append(Section(f"lines {first}–{last}", _normalise("\n".join(body))))
        start = end
    return sections


def _txt_cut(lines: list[str], start: int) -> int:
    """End (exclusive) of the section starting at `start`: about 200 lines, after a blank line when one is near."""
    if len(lines) - start <= _TXT_LINES + _TXT_LINES // 4:
        return len(lines)
    target = start + _TXT_LINES
    for distance in range(_TXT_LINES // 4):
        for index in (target - distance, target + distance):
            if not lines[index - 1].strip():  # cut after a blank line: paragraphs stay whole
                return index
    return target


# --- Markdown -------------------------------------------------------------------------------------------------------

_MD_HEADING = re.compile(r" {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*")
_MD_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_MD_LINK = re.compile(r"!?\[([^\]]*)\]\([^)]*\)")
_MD_EMPHASIS = re.compile(r"(\*\*|__|\*|_|`)(.+?)\1")


def _md_sections(name: str, text: str) -> list[Section]:
    sections: list[Section] = []
    label, lines = "", []
    fence = None
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        opening = _MD_FENCE.match(line)
        if fence is None and opening:
            fence = opening.group(1)
        elif fence is not None:
            if opening and opening.group(1)[0] == fence[0] and len(opening.group(1)) >= len(fence) \
                    and not line.strip().strip(fence[0]):
                fence = None
        else:
            heading = _MD_HEADING.fullmatch(line)
            title = _md_heading_text(heading.group(2) or "") if heading else ""
            if title:
                if len(sections) == _MAX_SECTIONS:  # counted as read: a flood of headings stops here
                    raise DocumentRejected(name, _TOO_MANY_SECTIONS)
                sections.append(Section(label, _normalise("\n".join(lines))))
                label, lines = _heading_label(title), []
        lines.append(line)
    sections.append(Section(label, _normalise("\n".join(lines))))
    return sections


def _md_heading_text(heading: str) -> str:
    heading = _MD_LINK.sub(r"\1", heading)
    for _ in range(3):  # nested emphasis: ***x***, **`x`**
        heading = _MD_EMPHASIS.sub(r"\2", heading)
    return _one_line(heading)


# --- CSV ------------------------------------------------------------------------------------------------------------

_CSV_DELIMITERS = (",", ";", "\t", "|")
_CSV_SEP_HINT = re.compile(r"sep=(.)\s*")  # Excel's first-line hint, e.g. "sep=;"


def _csv_sections(name: str, text: str, max_rows: int) -> list[Section]:
    """Sections of `_CSV_ROWS` rows, each with the header. A small table writes each cell with its column's name
    (every row reads on its own); a large one (over `_CSV_COMPACT_FROM` rows) is column-aware instead: the columns
    once per section, then each row's cells in column order, which takes a half to a third of the tokens and so of
    the passages, embeddings and cost."""
    stream = io.StringIO(text, newline="")
    first_line = stream.readline()
    hint = _CSV_SEP_HINT.fullmatch(first_line)
    skipped = 1 if hint else 0
    if hint:
        delimiter = hint.group(1)
    else:
        stream.seek(0)
        delimiter = _sniff_delimiter(text[:65_536])
    reader = csv.reader(stream, delimiter=delimiter)
    header: list[str] | None = None
    parsed: list[tuple[int, int, list[str]]] = []  # (first line, last line, cells) of each data row
    previous = 0
    try:
        for row in reader:
            start, end, previous = previous + 1, reader.line_num, reader.line_num
            cells = [_one_line(cell) for cell in row]
            if not any(cells):
                continue
            if header is None:
                header, header_at = _csv_header(cells), start + skipped
                continue
            if len(parsed) == max_rows:  # counted as read: nothing past the limit is parsed
                raise DocumentRejected(name, f"the CSV file has more than {max_rows:,} rows; the limit is "
                                             f"{max_rows:,}")
            parsed.append((start + skipped, end + skipped, cells))
    except csv.Error:
        raise DocumentRejected(name, "the CSV file is malformed and cannot be read") from None
    if header is None:
        return []
    compact = len(parsed) > _CSV_COMPACT_FROM
    header_line = "Columns: " + (" | ".join(header) if compact else "; ".join(header))
    sections = []
    for at in range(0, len(parsed), _CSV_ROWS):
        block = parsed[at:at + _CSV_ROWS]
        rows = [_csv_row(header, cells, compact) for _, _, cells in block]
        sections.append(_csv_section(header_line, rows, block[0][0], block[-1][1]))
    if not sections:  # a header and nothing else: still worth reading
        sections.append(Section(f"row {header_at}", header_line))
    return sections


def _csv_row(header: list[str], cells: list[str], compact: bool) -> str:
    if compact:  # column-aware: the cells in column order; a | inside a cell is escaped so columns stay apart
        return " | ".join(cell.replace("|", "\\|") for cell in cells)
    names = header + [f"column {i}" for i in range(len(header) + 1, len(cells) + 1)]
    return "; ".join(f"{names[i]}: {value}" for i, value in enumerate(cells) if value)


def _csv_section(header_line: str, rows: list[str], first: int, last: int) -> Section:
    label = f"row {first}" if first == last else f"rows {first}–{last}"
    return Section(label, _normalise("\n".join([header_line, *rows])))


def _csv_header(cells: list[str]) -> list[str]:
    names, seen = [], Counter()
    for index, cell in enumerate(cells, 1):
        base = cell or f"column {index}"
        seen[base] += 1
        names.append(base if seen[base] == 1 else f"{base} ({seen[base]})")
    return names


def _sniff_delimiter(sample: str) -> str:
    """The candidate that splits the first rows into the same number (more than one) of columns most consistently."""
    lines = sample.splitlines(keepends=True)
    if len(lines) > 1 and len(sample) == 65_536:
        lines = lines[:-1]  # the last line may be cut short
    sample = "".join(lines[:50])
    best, best_score = ",", (0.0, 0)
    for delimiter in _CSV_DELIMITERS:
        try:
            counts = [len(row) for row in csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter) if row]
        except csv.Error:
            continue
        if not counts:
            continue
        columns, frequency = Counter(counts).most_common(1)[0]
        score = (frequency / len(counts), columns)
        if columns > 1 and score > best_score:
            best, best_score = delimiter, score
    return best


# --- HTML -----------------------------------------------------------------------------------------------------------

_HTML_SKIP = {"script", "style", "noscript", "template", "svg"}  # not "head": its end tag is optional
_HTML_PARAGRAPH = {"p", "div", "section", "article", "main", "header", "footer", "nav", "aside", "blockquote", "pre",
                   "table", "ul", "ol", "dl", "figure", "figcaption", "form", "fieldset", "address", "details",
                   "summary", "hr", "h4", "h5", "h6", "title", "caption"}
_HTML_LINE = {"br", "li", "tr", "dt", "dd", "option"}
_HTML_SECTION = {"h1", "h2", "h3"}


class _HtmlText(HTMLParser):
    """Text with block-level line breaks, split into sections at h1–h3; scripts, styles and templates dropped."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[list] = [["", []]]  # [label, parts: text, or 1 (line break) or 2 (paragraph break)]
        self.skip = 0  # depth inside dropped elements
        self.pre = 0
        self.heading: str | None = None  # the open h1–h3 tag
        self.heading_from = 0  # where its text starts in the current section's parts
        self.cells: list[int] = []  # cells seen in the open row of each open table

    @property
    def parts(self) -> list[str | int]:
        return self.sections[-1][1]

    def handle_starttag(self, tag, attrs):
        if tag in _HTML_SKIP:
            self.skip += 1
        if self.skip:
            return
        if tag in _HTML_SECTION and self.heading is None:
            self.heading = tag
            if len(self.sections) > _MAX_SECTIONS:
                raise _TooManySections
            self.sections.append([None, []])
            self.heading_from = 0
        elif tag in _HTML_PARAGRAPH or tag in _HTML_SECTION:
            self.parts.append(2)
        elif tag in _HTML_LINE:
            self.parts.append(1)
        if tag == "pre":
            self.pre += 1
        elif tag == "table":
            self.cells.append(0)
        elif tag == "tr" and self.cells:
            self.cells[-1] = 0
        elif tag in ("td", "th"):
            if self.cells:
                if self.cells[-1]:
                    self.parts.append(" | ")
                self.cells[-1] += 1
            else:
                self.parts.append(" ")

    def handle_endtag(self, tag):
        if tag in _HTML_SKIP:
            self.skip = max(0, self.skip - 1)
            return
        if self.skip:
            return
        if tag == self.heading:
            self.heading = None
            title = _one_line(_html_render(self.parts[self.heading_from:]))
            if title:
                self.sections[-1][0] = _heading_label(title)
                self.parts.append(2)
            else:  # an empty heading (an image, an anchor): its section goes on
                _, parts = self.sections.pop()
                self.parts.extend(parts)
        elif tag in _HTML_PARAGRAPH or tag in _HTML_SECTION or tag in _HTML_LINE:
            self.parts.append(2 if tag in _HTML_PARAGRAPH else 1)
        if tag == "pre":
            self.pre = max(0, self.pre - 1)
        elif tag == "table" and self.cells:
            self.cells.pop()

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data if self.pre else re.sub(r"\s+", " ", data))

    def result(self) -> list[Section]:
        if self.heading is not None:  # an h1–h3 never closed: whatever followed it is its title
            self.handle_endtag(self.heading)
        return [Section(label or "", _normalise(_html_render(parts))) for label, parts in self.sections]


def _html_render(parts: list[str | int]) -> str:
    """Text with each run of breaks between two texts rendered once, as its strongest: a row ending and the next
    starting make one line break, not a blank line."""
    out, pending = [], 0
    for part in parts:
        if isinstance(part, int):
            pending = max(pending, part)
        elif pending and not part.strip():
            continue  # the indentation between two blocks
        else:
            if pending and out:
                out.append("\n" * pending)
            pending = 0
            out.append(part)
    return "".join(out)


class _TooManySections(Exception):
    pass


def _html_sections(name: str, text: str) -> list[Section]:
    parser = _HtmlText()
    try:
        parser.feed(text)
        parser.close()
    except _TooManySections:
        raise DocumentRejected(name, _TOO_MANY_SECTIONS) from None
    except (Exception, RecursionError) as exc:  # html.parser is forgiving; this is only a guard
        if _out_of_memory(exc):
            raise MemoryError from None
        raise DocumentRejected(name, "the HTML file is malformed and cannot be read") from None
    return parser.result()
