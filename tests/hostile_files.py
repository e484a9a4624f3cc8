"""Hostile files that stay within every size limit, built in memory at test time (no fixtures on disk, no network).

Each one is small and passes the checks made before parsing (bytes, page count, zip directory) but costs a parser
far more than its size suggests:
- `shared_stream_pdf(pages)`: every page's /Contents is the same Flate stream of text operators that inflates to tens
  of MB (about 300 KB for 500 pages): pypdf parses all of it again for each page, so reading the file takes an hour.
- `slow_text_pdf(pages)`: pages sharing a stream that is within every work limit and still takes pypdf about 13 s
  a page (its text extraction is quadratic in a page's text): for the deadline.
- `operator_flood_pdf(operators)`: one page with a million (or millions of) tiny text operators, compressed to a few
  KB.
- `dense_page_pdf(content_bytes, pages)`: pages with their own content streams of a given size.
- `form_pdf(form_bytes, draws, pages)`: pages drawing one shared form (a content stream of its own) many times.
- `docx_xml_bomb(expanded_mb)`: a .docx of about 3.5 MB whose word/document.xml is 199 MB of repetitive XML at about
  56:1 (under the 100:1 checked per part, and under the 200 MB total allowed for a 20 MB file); python-docx would
  build an lxml tree of several GB from it. Smaller ones, or with the XML in other parts, for the other limits.
- `huge_csv(rows)`: a CSV with that many short data rows.
- `deep_cpu_text(lines)`: Markdown whose every line is a heading: many tiny sections for little text.

Pure Python and the standard library; each builds in under a second, and what a bomb unpacks to is never held whole.
"""
from __future__ import annotations

import io
import random
import zipfile
import zlib

_ZIP_TIME = (2025, 1, 1, 0, 0, 0)


# --- PDF ------------------------------------------------------------------------------------------------------------

def _pdf(objects: list[bytes], streams: dict[int, bytes] | None = None) -> bytes:
    """A PDF from object bodies (object 1 is the catalog); `streams` maps an object number to the Flate-compressed
    data of a stream object whose body is its dictionary. The xref offsets are exact."""
    streams = streams or {}
    out, offsets = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body
        if number in streams:
            out += b"\nstream\n" + streams[number] + b"\nendstream"
        out += b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return bytes(out)


def _deflate(pieces, level: int = 9) -> bytes:
    compressor, out = zlib.compressobj(level), []
    for piece in pieces:
        out.append(compressor.compress(piece))
    out.append(compressor.flush())
    return b"".join(out)


_FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"


def _pages_pdf(page_count: int, contents_of, streams: dict[int, tuple[bytes, bytes]],
               resources: bytes = b"<< /Font << /F1 3 0 R >> >>") -> bytes:
    """Catalog 1, page tree 2, font 3, then the `streams` (number → (dictionary, compressed data)), then the pages
    (each with `resources`); `contents_of(page_index)` gives each page's /Contents value."""
    first_page = 4 + len(streams)
    kids = b" ".join(f"{first_page + i} 0 R".encode() for i in range(page_count))
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>",
               b"<< /Type /Pages /Kids [" + kids + b"] /Count " + str(page_count).encode() + b" >>", _FONT]
    data = {}
    for number in sorted(streams):
        dictionary, compressed = streams[number]
        objects.append(dictionary)
        data[number] = compressed
    for index in range(page_count):
        objects.append(b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources " + resources +
                       b" /Contents " + contents_of(index) + b" >>")
    return _pdf(objects, data)


def _stream_dictionary(compressed: bytes) -> bytes:
    return f"<< /Length {len(compressed)} /Filter /FlateDecode >>".encode()


_LINE = b"(Lorem ipsum dolor sit amet, consectetur adipiscing elit) Tj T*\n"
_LONG_LINE = b"(" + b"Lorem ipsum dolor sit amet consectetur " * 5 + b") Tj T*\n"  # 204 bytes, one operator


def shared_stream_pdf(pages: int = 500, inflated_mb: float = 70, line: bytes = _LINE) -> bytes:
    """`pages` pages whose /Contents all point at one Flate stream of `line` repeated, inflating to about
    `inflated_mb` MB (70 MB: under pypdf's own 75,000,000-byte cap; about 300 KB for 500 pages)."""
    per_mb = 1_048_576 // len(line)
    whole, part = divmod(int(inflated_mb * per_mb), per_mb)
    chunk = line * per_mb
    head, tail = b"BT /F1 10 Tf 12 TL 72 720 Td\n", b"ET\n"
    compressed = _deflate([head, *(chunk for _ in range(whole)), line * part, tail])
    return _pages_pdf(pages, lambda _: b"4 0 R", {4: (_stream_dictionary(compressed), compressed)})


def slow_text_pdf(pages: int = 500) -> bytes:
    """Within every work limit, and slow all the same: each page shows 3.7 MB of text in about 19,000 operators
    (under 4 MB and 20,000), all pages sharing that one stream. pypdf's text extraction is quadratic in a page's text:
    about 13 s a page, so only a deadline stops it (the per-file limit would, after 17 pages)."""
    return shared_stream_pdf(pages, 3.7, _LONG_LINE)


def operator_flood_pdf(operators: int = 1_000_000, chunk_operators: int = 100_000) -> bytes:
    """One page with `operators` tiny text-showing operators ("(a)'", four bytes each: a new line and one letter),
    compressed to a few KB. A million stay under 4 MB unpacked (the per-page content limit), so only the count of
    text operators refuses it; three million are over 4 MB too."""
    body = b"(a)'" * chunk_operators
    full, rest = divmod(operators, chunk_operators)
    compressed = _deflate([b"BT /F1 10 Tf 12 TL 72 720 Td\n", *(body for _ in range(full)), b"(a)'" * rest, b"\nET\n"])
    return _pages_pdf(1, lambda _: b"4 0 R", {4: (_stream_dictionary(compressed), compressed)})


def dense_page_pdf(content_bytes: int, pages: int = 1, line: bytes = b"(Quarterly figures line after line) Tj T*\n"
                   ) -> bytes:
    """`pages` pages, each with its own content stream of about `content_bytes` bytes of `line` repeated (text by
    default; pass a path such as b"0 0 m 100 100 l S\\n" for content without text): the per-page and per-file limits
    without a shared stream."""
    content = b"BT /F1 10 Tf 12 TL 72 720 Td\n" + line * max(1, content_bytes // len(line)) + b"ET\n"
    compressed = zlib.compress(content, 9)
    streams = {4 + i: (_stream_dictionary(compressed), compressed) for i in range(pages)}
    return _pages_pdf(pages, lambda index: f"{4 + index} 0 R".encode(), streams)


def form_pdf(form_bytes: int, draws: int, pages: int = 1) -> bytes:
    """`pages` pages sharing one resources dictionary that names a form of about `form_bytes` bytes of text
    operators; each page's content draws it `draws` times ("/X1 Do"; 0: named, never drawn)."""
    form = b"BT /F1 10 Tf 12 TL 72 720 Td\n" + _LINE * max(1, form_bytes // len(_LINE)) + b"ET\n"
    form_compressed = zlib.compress(form, 9)
    form_dictionary = (f"<< /Type /XObject /Subtype /Form /BBox [0 0 612 792] /Length {len(form_compressed)} "
                       f"/Filter /FlateDecode /Resources << /Font << /F1 3 0 R >> >> >>").encode()
    content = zlib.compress(b"q 1 0 0 1 0 0 cm /X1 Do Q\n" * draws + b"BT /F1 10 Tf 72 72 Td (Footer) Tj ET\n", 9)
    return _pages_pdf(pages, lambda _: b"5 0 R", {4: (form_dictionary, form_compressed),
                                                  5: (_stream_dictionary(content), content)},
                      resources=b"<< /Font << /F1 3 0 R >> /XObject << /X1 4 0 R >> >>")


# --- Word -----------------------------------------------------------------------------------------------------------

def _content_types(main: str) -> bytes:
    return (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            b'<Default Extension="xml" ContentType="application/xml"/>'
            b'<Override PartName="/' + main.encode() + b'" ContentType="application/vnd.openxmlformats-'
            b'officedocument.wordprocessingml.document.main+xml"/></Types>')


def _rels(main: str) -> bytes:
    return (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
            b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
            b'officeDocument" Target="' + main.encode() + b'"/></Relationships>')


_DOCUMENT_HEAD = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:document xmlns:w="http://schemas.'
                  b'openxmlformats.org/wordprocessingml/2006/main"><w:body>')
_DOCUMENT_TAIL = b"</w:body></w:document>"


def docx_xml_bomb(expanded_mb: int = 199, parts: tuple[str, ...] = ("word/document.xml",),
                  main: str = "word/document.xml") -> bytes:
    """A .docx of about 3.5 MB whose word/document.xml is `expanded_mb` MB of tiny runs ("<w:r><w:t>Lorem</w:t></w:r>"
    nine times, then one with a varied word, per paragraph): about 56:1, under the 100:1 checked per part, and 199 MB
    stays under the 200 MB the directory checks allow a 20 MB file. Some 40 million lxml nodes: gigabytes once
    python-docx parses it (about 15 bytes of memory per byte of this XML).

    `parts`: the members that get this XML (each `expanded_mb`); `main`: the main document part the content types
    and relationships name (given a one-paragraph body when it is not among `parts`)."""
    rng = random.Random(65)
    # A 1 MB block with a varied word in each paragraph: Deflate finds repeats only within its 32 KB window, so the
    # block repeated compresses about as well as the first copy.
    words = [f"{rng.randrange(16 ** 4):04x}".encode() for _ in range(4096)]
    paragraphs, size = [], 0
    while size < 1_048_576:
        word = words[len(paragraphs) % len(words)]
        paragraph = b"<w:p>" + b"<w:r><w:t>Lorem</w:t></w:r>" * 9 + b"<w:r><w:t>" + word + b"</w:t></w:r></w:p>"
        paragraphs.append(paragraph)
        size += len(paragraph)
    block = b"".join(paragraphs)[:1_048_576 - 64]
    block = block[:block.rindex(b"</w:p>") + 6]  # whole paragraphs, a little under 1 MB
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(zipfile.ZipInfo("[Content_Types].xml", _ZIP_TIME), _content_types(main))
        archive.writestr(zipfile.ZipInfo("_rels/.rels", _ZIP_TIME), _rels(main))
        if main not in parts:
            archive.writestr(zipfile.ZipInfo(main, _ZIP_TIME),
                             _DOCUMENT_HEAD + b"<w:p><w:r><w:t>Hello</w:t></w:r></w:p>" + _DOCUMENT_TAIL)
        for part in parts:
            info = zipfile.ZipInfo(part, _ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            setattr(info, "compress_level" if hasattr(zipfile.ZipInfo, "compress_level") else "_compresslevel", 6)
            with archive.open(info, "w", force_zip64=True) as member:
                member.write(_DOCUMENT_HEAD)
                for _ in range(expanded_mb):
                    member.write(block)
                member.write(_DOCUMENT_TAIL)
    return buffer.getvalue()


# --- text -----------------------------------------------------------------------------------------------------------

def huge_csv(rows: int = 150_000) -> bytes:
    """A header and `rows` short data rows (file lines 2..rows+1)."""
    lines = ["id,region,units"]
    lines.extend(f"{index},North,{index % 97}" for index in range(1, rows + 1))
    return ("\n".join(lines) + "\n").encode()


def deep_cpu_text(lines: int = 200_000) -> bytes:
    """Markdown whose every line is a heading (one tiny section each): much work and many sections per byte."""
    return b"".join(b"# h%d\n" % index for index in range(lines))
