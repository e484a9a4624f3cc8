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

from documents.extract import DOCUMENT_EXTENSIONS, DocumentRejected, ExtractedDocument, Section, extract_document, \
    is_document
from tests import document_corpus as corpus

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
