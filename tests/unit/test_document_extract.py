"""Text extraction from attached documents (documents/extract.py) on the generated corpus: each good type yields the
right labels and text, and each bad input is refused with a reason a person understands."""
from __future__ import annotations

import hashlib
import io
import pickle
import time
import tracemalloc
import zipfile

import docx
import pytest

from documents.extract import (
    DOCUMENT_EXTENSIONS,
    DocumentRejected,
    ExtractedDocument,
    Section,
    extract_document,
    is_document,
)
from tests import document_corpus as corpus
from tests import hostile_files as hostile

UNSUPPORTED = "unsupported file type; attach PDF, Word (.docx), text (.txt), Markdown (.md), CSV or HTML files"
PROTECTED = "the PDF is password-protected; remove the password and attach it again"
SCANNED = "scanned: no text to read (the PDF has no text layer; OCR is not supported)"


def flat(text: str) -> str:
    return " ".join(text.split())


def refusal(name: str, data: bytes, **limits) -> str:
    with pytest.raises(DocumentRejected) as caught:
        extract_document(name, data, **limits)
    exc = caught.value
    assert exc.name == name and str(exc) == f"{name}: {exc.reason}"
    assert "Traceback" not in exc.reason and "Error" not in exc.reason
    return exc.reason


def docx_bytes(build) -> bytes:
    document = docx.Document()
    build(document)
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def zip_bytes(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=compression) as archive:
        for member, content in members.items():
            archive.writestr(member, content)
    return buffer.getvalue()


# --- the API --------------------------------------------------------------------------------------------------------

def test_document_extensions_and_is_document():
    assert DOCUMENT_EXTENSIONS == ("pdf", "docx", "txt", "md", "csv", "html", "htm")
    for name in ("a.pdf", "A.PDF", "notes.Md", "x.y.docx", "data.CSV", "page.htm", "page.HTML", "dir/r.txt"):
        assert is_document(name), name
    for name in ("slides.pptx", "setup.exe", "README", "photo.png", "pdf", "archive.pdf.zip", "old.doc", ""):
        assert not is_document(name), name


def test_extracted_document_fields_and_text():
    data = b"# One\nfirst\n\n# Two\nsecond\n"
    document = extract_document("Notes.MD", data)
    assert isinstance(document, ExtractedDocument)
    assert (document.name, document.kind, document.extension, document.pages) == ("Notes.MD", "md", "md", None)
    assert document.data == data and document.sha256 == hashlib.sha256(data).hexdigest()
    assert document.sections == (Section("section “One”", "# One\nfirst"),
                                 Section("section “Two”", "# Two\nsecond"))
    assert document.text == "# One\nfirst\n\n# Two\nsecond"
    assert "data=" not in repr(document)  # the bytes never end up in logs
    with pytest.raises(AttributeError):
        document.name = "other"  # frozen


def test_htm_is_stored_as_html():
    document = extract_document("page.htm", b"<p>Hello</p>")
    assert (document.kind, document.extension) == ("html", "html")


def test_rejection_is_a_value_error_with_name_and_reason_and_pickles():
    exc = DocumentRejected("a.pdf", "the file is empty")
    assert isinstance(exc, ValueError) and str(exc) == "a.pdf: the file is empty"
    copy = pickle.loads(pickle.dumps(exc))
    assert (copy.name, copy.reason, str(copy)) == ("a.pdf", "the file is empty", "a.pdf: the file is empty")


# --- PDF ------------------------------------------------------------------------------------------------------------

def test_pdf_pages_are_sections_and_each_fact_lands_on_its_page():
    data, facts = corpus.facts_pdf(40)
    document = extract_document("facts.pdf", data)
    assert (document.kind, document.extension, document.pages) == ("pdf", "pdf", 40)
    assert [s.label for s in document.sections] == [f"page {n}" for n in range(1, 41)]
    for number, section in enumerate(document.sections, 1):
        assert section.text.startswith(f"Page {number}\n")
        assert 230 <= len(section.text.split()) <= 380
    assert len(facts) == 20 and len({f.page for f in facts}) == 20
    for fact in facts:
        page = document.sections[fact.page - 1]
        assert fact.sentence in flat(page.text) and fact.answer in fact.sentence
        assert [s.label for s in document.sections if fact.answer in flat(s.text)] == [f"page {fact.page}"]
        assert fact.sentence not in fact.question


def test_facts_pdf_is_deterministic_and_pages_differ():
    first, facts = corpus.facts_pdf(6)
    assert corpus._facts_pdf.__wrapped__(6)[0] == first and [f.page for f in facts] == corpus.fact_pages(6)
    texts = [s.text.split("\n", 1)[1] for s in extract_document("f.pdf", first).sections]
    assert len(set(texts)) == 6


def test_pdf_encrypted_only_for_permissions_is_read():
    # No password is needed to open it (every viewer opens it silently), so it is read rather than refused.
    document = extract_document("open.pdf", corpus.encrypted_pdf(user_password=""))
    assert [s.label for s in document.sections] == ["page 1"] and "salary bands" in document.text


# --- Word -----------------------------------------------------------------------------------------------------------

def test_docx_sections_follow_headings_and_keep_the_table():
    data, sentences = corpus.headed_docx()
    document = extract_document("review.docx", data)
    assert (document.kind, document.extension, document.pages) == ("docx", "docx", None)
    assert [s.label for s in document.sections] == [f"section “{heading}”" for heading in sentences]
    for section, (heading, sentence) in zip(document.sections, sentences.items()):
        assert section.text.startswith(heading + "\n\n") and sentence in section.text
        assert all(other not in section.text for other in sentences.values() if other != sentence)
    results = document.sections[2].text
    assert "Region | Revenue | Growth\nNorth | 1.2 million | 4%\nSouth | 0.9 million | -2%\nWest | 1.6 million | 7%" \
        in results


def test_docx_text_before_the_first_heading_and_document_order():
    def build(document):
        document.add_paragraph("Prepared for the steering group.")
        table = document.add_table(rows=1, cols=2)
        table.rows[0].cells[0].text, table.rows[0].cells[1].text = "Owner", "Finance"
        document.add_heading("Scope", level=3)
        paragraph = document.add_paragraph("Line one")
        paragraph.add_run().add_break()
        paragraph.add_run("line   two")
        document.add_paragraph("")  # empty paragraphs leave no trace
        document.add_heading("", level=1)  # neither does an empty heading
        document.add_paragraph("Still in scope.")

    document = extract_document("memo.docx", docx_bytes(build))
    assert document.sections == (
        Section("", "Prepared for the steering group.\n\nOwner | Finance"),
        Section("section “Scope”", "Scope\n\nLine one\nline two\n\nStill in scope."),
    )


def test_docx_without_text_is_refused():
    assert refusal("blank.docx", docx_bytes(lambda d: d.add_paragraph("   "))) == "the document has no text"


# --- CSV ------------------------------------------------------------------------------------------------------------

def test_csv_sections_of_fifty_rows_carry_the_header():
    document = extract_document("sales.csv", corpus.sample_csv())
    assert [s.label for s in document.sections] == ["rows 2–51", "rows 52–101", "rows 102–121"]
    header = "Columns: region; month; product; units; revenue_eur"
    for section, rows in zip(document.sections, (50, 50, 20)):
        lines = section.text.split("\n")
        assert lines[0] == header and len(lines) == rows + 1
    first = document.sections[0].text.split("\n")[1]
    assert first.startswith("region: North; month: 2024-01; product: Widget; units: ")
    assert "product: Bolts, assorted; units:" in document.text  # a quoted comma stays in its cell


@pytest.mark.parametrize("data, delimiter", [(b"name;price;note\nA;1,5;x\nB;2,5;y\n", ";"),
                                             (b"name\tprice\tnote\nA\t1,5\tx\nB\t2,5\ty\n", "\t"),
                                             (b"name|price|note\nA|1,5|x\nB|2,5|y\n", "|")])
def test_csv_delimiter_is_sniffed(data, delimiter):
    document = extract_document("prices.csv", data)
    assert document.sections == (Section("rows 2–3", "Columns: name; price; note\nname: A; price: 1,5; note: x\n"
                                                     "name: B; price: 2,5; note: y"),)


def test_csv_labels_are_file_lines_across_quoted_newlines_and_blank_lines():
    data = b'sep=;\nitem;comment\nA;"first line\nsecond line"\n\nB;plain\n'
    document = extract_document("c.csv", data)
    assert document.sections == (Section("rows 3–6", "Columns: item; comment\nitem: A; comment: first line second "
                                                     "line\nitem: B; comment: plain"),)


# --- Markdown, HTML, text -------------------------------------------------------------------------------------------

def test_markdown_sections_at_atx_headings_not_in_code():
    data = ("Preamble line.\n\n# Overview\nSome   text.\n\n```sh\n# not a heading\n```\n"
            "## **Results** ##\nWe found [things](https://example.org).\n#hashtag is not a heading\n").encode()
    document = extract_document("notes.md", data)
    assert [s.label for s in document.sections] == ["", "section “Overview”", "section “Results”"]
    assert document.sections[1].text == "# Overview\nSome text.\n\n```sh\n# not a heading\n```"
    assert document.sections[2].text.endswith("#hashtag is not a heading")


def test_html_sections_at_h1_to_h3_without_scripts_and_with_entities():
    data = (b"<!doctype html><html><head><title>Q&amp;A</title><style>p { color: red }</style>"
            b"<script>var token = 'SCRIPT-SECRET'; if (a < b) {}</script></head><body>"
            b"<p>Intro&nbsp;text: caf&eacute; &#8364;5 &lt;b&gt;</p><noscript>Enable NOSCRIPT-TEXT</noscript>"
            b"<h1>Main <em>findings</em></h1><p>Alpha\n    beta</p><h4>Detail</h4>"
            b"<ul>\n<li>one</li>\n<li>two</li>\n</ul>"
            b"<table>\n<tr><th>Region</th><th>Sales</th></tr>\n<tr><td>North</td><td>12</td></tr>\n</table>"
            b"<h2>Next</h2>line<br>break<template><p>TEMPLATE-TEXT</p></template><h3></h3><p>after</p></body></html>")
    document = extract_document("page.html", data)
    assert document.sections == (
        Section("", "Q&A\n\nIntro text: café €5 <b>"),
        Section("section “Main findings”", "Main findings\n\nAlpha beta\n\nDetail\n\none\ntwo\n\nRegion | Sales\n"
                                            "North | 12"),
        Section("section “Next”", "Next\n\nline\nbreak\n\nafter"),
    )
    for hidden in ("SCRIPT-SECRET", "color", "NOSCRIPT-TEXT", "TEMPLATE-TEXT"):
        assert hidden not in document.text


def test_html_declared_charset_is_honoured():
    data = '<meta charset="iso-8859-15"><p>Prix : 5 €, très bien</p>'.encode("iso-8859-15")
    assert extract_document("p.html", data).text == "Prix : 5 €, très bien"


@pytest.mark.parametrize("data, text", [
    ("Café crème: 5 € – “quoted”".encode("cp1252"), "Café crème: 5 € – “quoted”"),
    ("Grüße aus Köln\r\nzweite Zeile".encode("utf-16"), "Grüße aus Köln\nzweite Zeile"),
    ("Grüße".encode("utf-16-be").join([b"\xfe\xff", b""]), "Grüße"),
    ("\ufeffWith a BOM".encode(), "With a BOM"),
    ("naïve   spacing\t\there\n\n\n\nnext  paragraph  ".encode(), "naïve spacing here\n\nnext paragraph"),
])
def test_text_is_decoded_and_normalised(data, text):
    document = extract_document("note.txt", data)
    assert document.sections == (Section("", text),)


def test_a_stray_control_character_in_utf8_text_is_dropped():
    data = ("Build log: step one finished without problems, step two as well. " * 3 + "\x1b[32mOK\x1b[0m").encode()
    assert extract_document("build.txt", data).text.endswith("as well. [32mOK[0m")


def test_long_text_is_cut_into_line_sections_at_blank_lines():
    lines = []
    for number in range(1, 601):
        lines.append(f"Sentence number {number}.")
        if number % 40 == 0:
            lines.append("")  # paragraph breaks every 40 sentences
    document = extract_document("long.txt", "\n".join(lines).encode())
    labels = [s.label for s in document.sections]
    assert labels == ["lines 1–204", "lines 206–409", "lines 411–614"]
    assert document.sections[1].text.startswith("Sentence number 201.")
    assert flat(document.text) == flat("\n".join(lines))


def test_short_text_is_one_unlabelled_section():
    document = extract_document("short.txt", "\n".join(f"line {n}" for n in range(250)).encode())
    assert [s.label for s in document.sections] == [""]


# --- bad inputs -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["report.pdf", "notes.txt", "memo.docx", "data.csv", "page.html"])
def test_empty_file(name):
    assert refusal(name, corpus.empty_file()) == "the file is empty"


def test_oversized_file_names_both_sizes():
    assert refusal("big.txt", corpus.oversized()) == "the file is 25.3 MB; the limit is 20 MB"
    assert refusal("big.txt", corpus.oversized(1000), max_bytes=1000) == \
        "the file is 1,265 bytes; the limit is 1,000 bytes"
    assert refusal("big.pdf", b"%PDF-" + b"x" * 2_000_000, max_bytes=1_048_576) == \
        "the file is 1.9 MB; the limit is 1 MB"
    assert refusal("big.txt", b"x" * (1_048_576 + 10), max_bytes=1_048_576) == \
        "the file is just over 1 MB; the limit is 1 MB"


@pytest.mark.parametrize("name", ["slides.pptx", "setup.exe", "README", "photo.jpeg", "old.doc", "sheet.xlsx"])
def test_unsupported_types(name):
    assert refusal(name, b"anything at all") == UNSUPPORTED


def test_renamed_binaries_are_named_for_what_they_are():
    png = corpus.renamed_binary()
    assert refusal("report.pdf", png) == "this is not a PDF file (it looks like a PNG image)"
    assert refusal("report.pdf", b"\xff\xd8\xff\xe0rest") == "this is not a PDF file (it looks like a JPEG image)"
    assert refusal("report.pdf", b"GIF89a....") == "this is not a PDF file (it looks like a GIF image)"
    assert refusal("report.pdf", b"\x7fELF\x02\x01\x01\x00") == \
        "this is not a PDF file (it looks like a program (ELF executable))"
    assert refusal("report.pdf", b"MZ\x90\x00\x03\x00") == \
        "this is not a PDF file (it looks like a Windows program (.exe))"
    assert refusal("report.pdf", zip_bytes({"a.txt": b"hi"})) == "this is not a PDF file (it looks like a ZIP archive)"
    assert refusal("report.pdf", corpus.headed_docx()[0]) == \
        "this is not a PDF file (it looks like a Word (.docx) document)"
    assert refusal("report.pdf", b"Dear team, the figures are attached.") == \
        "this is not a PDF file (its content is not a PDF)"


def test_not_a_word_file():
    pdf = corpus.encrypted_pdf()
    assert refusal("memo.docx", pdf) == "this is not a Word (.docx) file (it looks like a PDF file)"
    assert refusal("memo.docx", corpus.renamed_binary()) == \
        "this is not a Word (.docx) file (it looks like a PNG image)"
    assert refusal("memo.docx", b"plain text, not a zip") == "this is not a Word (.docx) file"
    assert refusal("memo.docx", zip_bytes({"notes.txt": b"hello"})) == "this is not a Word (.docx) file"
    workbook = zip_bytes({"[Content_Types].xml": b"<Types/>", "xl/workbook.xml": b"<workbook/>"})
    assert refusal("memo.docx", workbook) == "this is not a Word (.docx) file (it looks like an Excel workbook)"


def test_damaged_word_file():
    data = corpus.headed_docx()[0]
    assert refusal("memo.docx", data[: len(data) // 2]) == "the Word file is damaged and cannot be read"
    broken = zip_bytes({"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w:document"})
    assert refusal("memo.docx", broken) == "the Word file is damaged and cannot be read"


@pytest.mark.parametrize("name", ["notes.txt", "notes.md", "data.csv", "page.html", "page.htm"])
def test_binary_content_in_text_types(name):
    assert refusal(name, corpus.renamed_binary()) == "this is a binary file, not text (it looks like a PNG image)"
    assert refusal(name, b"text\x00with a NUL") == "this is a binary file, not text"
    assert refusal(name, b"abc\x01\x02 and \x81\x8d") == "this is a binary file, not text"  # not UTF-8, not cp1252
    assert refusal(name, b"caf\xe9 \x1b[0m") == "this is a binary file, not text"  # cp1252 only without controls
    assert refusal(name, b"\xff\xfeodd") == "this is a binary file, not text"  # a UTF-16 BOM, then half a character


def test_whitespace_only_text_has_no_text():
    assert refusal("blank.txt", b"  \n\t\n  ") == "the document has no text"
    assert refusal("blank.html", b"<html><script>only()</script></html>") == "the document has no text"


def test_encrypted_pdf():
    assert refusal("salaries.pdf", corpus.encrypted_pdf()) == PROTECTED


def test_too_many_pages():
    assert refusal("long.pdf", corpus.too_many_pages_pdf(12), max_pages=10) == "the PDF has 12 pages; the limit is 10"
    assert refusal("huge.pdf", corpus.too_many_pages_pdf(812)) == "the PDF has 812 pages; the limit is 500"
    assert extract_document("ok.pdf", corpus.too_many_pages_pdf(10), max_pages=10).pages == 10


def test_scanned_pdf():
    reason = refusal("scan.pdf", corpus.scanned_pdf())
    assert SCANNED in reason and reason.endswith("OCR is not supported)")


def _pdf(objects: list[bytes]) -> bytes:
    out, offsets = b"%PDF-1.4\n", []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    return out + f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()


@pytest.mark.parametrize("data", [
    b"%PDF-1.7\nthis is not really a PDF at all",
    _pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [2 0 R] /Count 1 >>"]),  # a cyclic page tree
    _pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
          b"<< /Type /Page /Parent 2 0 R /X " + b"[" * 50_000 + b"]" * 50_000 + b" >>"]),  # absurdly deep nesting
])
def test_damaged_pdf(data):
    assert refusal("broken.pdf", data) == "the PDF is damaged and cannot be read"


def test_truncated_pdf_is_damaged_or_partly_read():
    data, _ = corpus.facts_pdf(6)
    try:
        document = extract_document("cut.pdf", data[: len(data) // 2])
    except DocumentRejected as exc:
        assert exc.reason in ("the PDF is damaged and cannot be read", "the PDF has no pages")
    else:  # pypdf may recover the objects it finds; then every label still names a real page
        assert all(s.label.startswith("page ") for s in document.sections)


def test_zip_bomb_is_refused_from_declared_sizes_without_unpacking(monkeypatch):
    bomb = corpus.zip_bomb_docx()
    assert len(bomb) < 2_000_000
    monkeypatch.setattr(docx, "Document", lambda *a, **k: pytest.fail("python-docx must never see a zip bomb"))
    tracemalloc.start()
    try:
        started = time.perf_counter()
        reason = refusal("bomb.docx", bomb)
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert reason == "the Word file expands to more than 200 MB (a zip bomb?)"
    assert peak < 20_000_000 and elapsed < 1.0
    # With a larger byte limit the total passes (the cap is 500 MB) but the compression ratio does not.
    assert refusal("bomb.docx", bomb, max_bytes=60 * 1_048_576) == \
        "the Word file expands to more than 100 times its size in one part (a zip bomb?)"


def test_zip_with_too_many_members():
    members = {"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w:document/>"}
    members.update({f"word/media/{n}.bin": b"" for n in range(10_000)})
    data = zip_bytes(members, compression=zipfile.ZIP_STORED)
    assert refusal("many.docx", data) == "the Word file has more than 10,000 parts (a zip bomb?)"


def test_reasons_never_quote_the_content():
    secret = b"SECRET-CONTENT-1234"
    for name, data in [("a.pdf", secret), ("a.docx", secret), ("a.txt", secret + b"\x00"), ("a.csv", secret + b"\x00"),
                       ("a.pdf", b"%PDF-1.4 " + secret)]:
        assert "SECRET" not in refusal(name, data)


def test_a_good_file_alongside_bad_ones_still_works():
    data, _ = corpus.headed_docx()
    batch = [("empty.pdf", corpus.empty_file()), ("salaries.pdf", corpus.encrypted_pdf()),
             ("scan.pdf", corpus.scanned_pdf()), ("bomb.docx", corpus.zip_bomb_docx()),
             ("report.pdf", corpus.renamed_binary()), ("slides.pptx", b"PK"), ("review.docx", data),
             ("sales.csv", corpus.sample_csv())]
    read, refused = [], []
    for name, content in batch:
        try:
            read.append(extract_document(name, content))
        except DocumentRejected as exc:
            refused.append(exc.name)
    assert [d.name for d in read] == ["review.docx", "sales.csv"]
    assert refused == ["empty.pdf", "salaries.pdf", "scan.pdf", "bomb.docx", "report.pdf", "slides.pptx"]
    assert read[0].sections[0].label == f"section “{corpus.DOCX_TITLE}”"


# --- work limits: hostile files within every size limit (tests/hostile_files.py) -------------------------------------

PAGE_CONTENT = "page 1 of the PDF unpacks to more than 4 MB of drawing instructions; the limit is 4 MB per page"
FILE_CONTENT = ("the PDF's pages unpack to more than 64 MB of drawing instructions (content shared by several pages "
                "counts on each); the limit is 64 MB")
PATHS = b"0 0 m 100 100 l S\n"  # drawing without text


def quick_refusal(name: str, data: bytes, *, seconds: float = 2.0, memory: int | None = 30_000_000,
                  **options) -> str:
    """The refusal, checked to come within `seconds` and (unless None) `memory` bytes of Python allocations (traced,
    which slows allocation-heavy code several times: the CSV parser)."""
    if memory is not None:
        tracemalloc.start()
    try:
        started = time.perf_counter()
        reason = refusal(name, data, **options)
        elapsed = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] if memory is not None else 0
    finally:
        tracemalloc.stop()
    assert elapsed < seconds and peak < (memory or 1), (elapsed, peak)
    return reason


def test_a_content_stream_shared_by_500_pages_is_refused_on_the_first():
    data = hostile.shared_stream_pdf()  # 70 MB of text operators, unpacked, behind every page
    assert len(data) < 400_000
    assert quick_refusal("shared.pdf", data) == PAGE_CONTENT


def test_content_shared_by_pages_counts_on_each_toward_the_file_limit():
    # 3 MB behind each of 30 pages: within the page limit, over the file's 64 MB by page 22.
    assert quick_refusal("shared.pdf", hostile.shared_stream_pdf(30, 3, PATHS), seconds=10) == FILE_CONTENT
    assert quick_refusal("dense.pdf", hostile.dense_page_pdf(3_000_000, 30, PATHS), seconds=10,
                         memory=120_000_000) == FILE_CONTENT


def test_a_page_of_a_million_text_operators_is_refused_by_their_count():
    data = hostile.operator_flood_pdf()  # 4 MB unpacked: just within the page limit
    assert len(data) < 10_000
    assert quick_refusal("flood.pdf", data) == \
        "page 1 of the PDF draws its text in more than 20,000 pieces; the limit is 20,000 per page"
    assert quick_refusal("flood.pdf", hostile.operator_flood_pdf(3_000_000)) == PAGE_CONTENT


def test_a_form_counts_on_the_page_each_time_it_is_drawn_and_not_where_it_is_only_named():
    assert quick_refusal("forms.pdf", hostile.form_pdf(500_000, draws=10)) == PAGE_CONTENT
    assert "Lorem ipsum" in extract_document("forms.pdf", hostile.form_pdf(500_000, draws=2)).text
    # Resources shared by 40 pages name a 3 MB form no page draws: nothing to count (64 MB would be reached).
    document = extract_document("named.pdf", hostile.form_pdf(3_000_000, draws=0, pages=40))
    assert document.pages == 40 and {s.text for s in document.sections} == {"Footer"}


def test_pages_within_the_work_limits_are_read():
    document = extract_document("dense.pdf", hostile.dense_page_pdf(100_000, pages=3))
    assert [s.label for s in document.sections] == ["page 1", "page 2", "page 3"]
    assert document.sections[0].text.startswith("Quarterly figures line after line")
    document = extract_document("shared.pdf", hostile.shared_stream_pdf(pages=4, inflated_mb=0.05))
    assert document.pages == 4 and len(document.sections) == 4


def test_pypdf_limits_on_a_page_refuse_the_file(monkeypatch):
    from pypdf import PageObject
    from pypdf.errors import LimitReachedError

    def hostile_page(self, *args, **kwargs):
        raise LimitReachedError("Reached maximum number of tokens per stream.")

    monkeypatch.setattr(PageObject, "extract_text", hostile_page)
    data, _ = corpus.facts_pdf(3)
    assert refusal("complex.pdf", data) == "page 1 of the PDF is too complex to read"


def test_a_word_file_with_200_mb_of_xml_is_refused_by_unpacking_it_without_python_docx(monkeypatch):
    bomb = hostile.docx_xml_bomb()
    infos = zipfile.ZipFile(io.BytesIO(bomb)).infolist()
    part = next(info for info in infos if info.filename == "word/document.xml")
    # Within every limit checked on the zip directory: under 20 MB, under 200 MB unpacked in all, under 100:1.
    assert len(bomb) < 5_000_000 and 190 * 1_048_576 < part.file_size < 200 * 1_048_576
    assert sum(info.file_size for info in infos) < 200 * 1_048_576 and part.file_size < 100 * part.compress_size
    monkeypatch.setattr(docx, "Document", lambda *a, **k: pytest.fail("python-docx must never see this file"))
    assert quick_refusal("bomb.docx", bomb, seconds=1.0, memory=20_000_000) == \
        "the Word document's text part is over 32 MB when unpacked; the limit is 32 MB"


def test_word_xml_limits_cover_every_part_and_the_main_part_named_by_content_types(monkeypatch):
    styles = hostile.docx_xml_bomb(40, parts=("word/styles.xml",))
    assert quick_refusal("styles.docx", styles) == ("a part of the Word file (styles, notes, headers or the like) is "
                                                    "over 32 MB when unpacked; the limit is 32 MB per part")
    three = hostile.docx_xml_bomb(30, parts=("word/document.xml", "word/styles.xml", "word/numbering.xml"))
    assert quick_refusal("three.docx", three) == ("the Word file's text and layout parts come to more than 64 MB "
                                                  "when unpacked; the limit is 64 MB")
    renamed = hostile.docx_xml_bomb(40, parts=("word/document2.xml",), main="word/document2.xml")
    assert quick_refusal("renamed.docx", renamed) == \
        "the Word document's text part is over 32 MB when unpacked; the limit is 32 MB"
    small = hostile.docx_xml_bomb(1, parts=("word/document2.xml",), main="word/document2.xml")
    assert extract_document("small.docx", small).text.startswith("LoremLorem")


def test_a_word_part_bigger_than_its_directory_says_is_damaged():
    members = {"[Content_Types].xml": b"<Types/>", "word/document.xml": b"<w:document/>" * 1000}
    data = bytearray(zip_bytes(members))
    # Shrink the declared size of word/document.xml in its central directory entry: zipfile stops there, and the
    # CRC of what it read does not match.
    entry = data.rfind(b"PK\x01\x02")
    struct_size = int.from_bytes(data[entry + 24:entry + 28], "little")
    data[entry + 24:entry + 28] = (struct_size // 2).to_bytes(4, "little")
    assert refusal("short.docx", bytes(data)) == "the Word file is damaged and cannot be read"


def test_csv_rows_are_limited():
    assert quick_refusal("big.csv", hostile.huge_csv(), seconds=3, memory=None) == \
        "the CSV file has more than 100,000 rows; the limit is 100,000"
    assert refusal("sales.csv", corpus.sample_csv(120), max_rows=100) == \
        "the CSV file has more than 100 rows; the limit is 100"
    assert extract_document("sales.csv", corpus.sample_csv(120), max_rows=120).sections[-1].label == "rows 102–121"


def test_progress_is_reported_before_each_pdf_page_and_once_for_other_kinds():
    calls = []
    data, _ = corpus.facts_pdf(6)
    extract_document("facts.pdf", data, progress=lambda page, pages: calls.append((page, pages)))
    assert calls == [(page, 6) for page in range(1, 7)]
    for name, content in [("a.txt", b"hello"), ("a.csv", corpus.sample_csv()), ("a.docx", corpus.headed_docx()[0]),
                          ("a.html", b"<p>x</p>"), ("a.md", b"# x")]:
        calls.clear()
        extract_document(name, content, progress=lambda page, pages: calls.append((page, pages)))
        assert calls == [(1, 1)], name


def test_whatever_progress_raises_ends_the_reading():
    class Stopped(Exception):
        pass

    def stop_at_three(page, pages):
        if page == 3:
            raise Stopped

    data, _ = corpus.facts_pdf(6)
    with pytest.raises(Stopped):  # not swallowed as an unreadable page
        extract_document("facts.pdf", data, progress=stop_at_three)


def test_running_out_of_memory_is_never_a_damaged_file(monkeypatch):
    from lxml import etree
    from pypdf import PageObject

    word, _ = corpus.headed_docx()

    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(PageObject, "extract_text", no_memory)
    data, _ = corpus.facts_pdf(2)
    with pytest.raises(MemoryError):
        extract_document("facts.pdf", data)

    def lxml_out_of_memory(*args, **kwargs):  # what lxml raises when libxml2's malloc fails (XML_ERR_NO_MEMORY)
        raise etree.XMLSyntaxError("unknown error", 2, 0, 0)

    monkeypatch.setattr(docx, "Document", lxml_out_of_memory)
    with pytest.raises(MemoryError):
        extract_document("review.docx", word)

    def lxml_syntax_error(*args, **kwargs):
        raise etree.XMLSyntaxError("mismatched tag", 76, 1, 1)

    monkeypatch.setattr(docx, "Document", lxml_syntax_error)
    assert refusal("review.docx", word) == "the Word file is damaged and cannot be read"


def test_a_large_table_is_written_column_aware_in_far_fewer_tokens():
    from chains.tokens import count_text

    small = extract_document("sales.csv", corpus.sample_csv(1_000))
    large = extract_document("sales.csv", corpus.sample_csv(1_001))
    assert small.sections[0].text.startswith("Columns: region; month; product; units; revenue_eur\nregion: North;")
    first = large.sections[0].text.split("\n")
    assert first[0] == "Columns: region | month | product | units | revenue_eur"
    assert first[1].startswith("North | 2024-01 | Widget | ") and len(first) == 51
    assert [s.label for s in large.sections][:2] == ["rows 2–51", "rows 52–101"] and len(large.sections) == 21
    assert "Bolts, assorted" in large.text  # a quoted comma stays in its cell
    per_row = count_text(large.text, "gpt-4o") / 1_001, count_text(small.text, "gpt-4o") / 1_000
    assert per_row[0] < 0.7 * per_row[1]


@pytest.mark.parametrize("name, heading", [("notes.md", "# Part {}\ntext\n"), ("page.html", "<h2>Part {}</h2><p>text</p>")])
def test_a_flood_of_headings_is_refused_as_it_is_read(name, heading):
    data = "".join(heading.format(n) for n in range(20_001)).encode()
    assert refusal(name, data) == "the document has more than 20,000 headings; the limit is 20,000"
    assert len(extract_document(name, "".join(heading.format(n) for n in range(500)).encode()).sections) >= 500
