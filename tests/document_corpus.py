"""Documents for tests and benchmarks, generated deterministically (no files on disk, no network, no pytest).

Good inputs:
- `facts_pdf(pages)`: a PDF whose page N is headed "Page N" and holds 250–350 words of plausible business prose
  (different on every page), with 20 distinctive fact sentences spread over the pages; the `Fact`s say which page
  holds which answer, and ask about it in other words.
- `headed_docx()`: a Word file with a title, Heading 1/2 sections each holding one distinctive sentence, and a table.
- `sample_csv()`: 120 rows of regional sales under a header.

Bad inputs: `empty_file()`, `encrypted_pdf()`, `scanned_pdf()`, `zip_bomb_docx()`, `renamed_binary()`,
`oversized(max_bytes)`, `too_many_pages_pdf(pages)`.
"""
from __future__ import annotations

import io
import random
import zipfile
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Fact:
    question: str  # asks for the fact in other words than the sentence
    page: int  # 1-based page of facts_pdf that holds it
    answer: str  # the key value, verbatim in the sentence
    sentence: str = ""  # the sentence as printed on the page


# (sentence, question, answer): the names and numbers appear nowhere else in the corpus.
FACT_SENTENCES: tuple[tuple[str, str, str], ...] = (
    ("The Orion project budget for 2027 is 4.2 million euros.",
     "What is the budget of the Orion project for 2027?", "4.2 million euros"),
    ("The Lisbon warehouse holds 18,400 pallets when it is completely full.",
     "How many pallets fit in the Lisbon warehouse at full capacity?", "18,400 pallets"),
    ("Helena Marchetti became chief compliance officer in March 2025.",
     "Who was appointed chief compliance officer in March 2025?", "Helena Marchetti"),
    ("The Falcon courier contract is renewed every 18 months.",
     "How often does the contract with Falcon couriers renew?", "every 18 months"),
    ("Customer churn in the Nordic region fell to 3.1 percent in the third quarter.",
     "What was the third-quarter churn rate among Nordic customers?", "3.1 percent"),
    ("The Kestrel data centre draws 92 percent of its electricity from renewable sources.",
     "What share of the Kestrel data centre's power is renewable?", "92 percent"),
    ("Every Tern pump ships with a warranty of 7 years.",
     "How long is the warranty on Tern pumps?", "7 years"),
    ("The garage under the Basel office has 240 parking spaces.",
     "How many parking spaces are there at the Basel office?", "240 parking spaces"),
    ("Project Meridian goes live on 14 October 2026.",
     "On what date does Project Meridian launch?", "14 October 2026"),
    ("Trainees receive a travel allowance of 65 euros per day.",
     "How much daily travel allowance do trainees get?", "65 euros per day"),
    ("The audit of the Aurora supplier produced 11 minor findings.",
     "How many minor findings came out of the Aurora supplier audit?", "11 minor findings"),
    ("The helpdesk resolves 87 percent of tickets within four hours.",
     "What share of helpdesk tickets is resolved within four hours?", "87 percent"),
    ("A Quartz licence costs 1,250 dollars per seat each year.",
     "What is the yearly price per seat of a Quartz licence?", "1,250 dollars"),
    ("The Granada plant built 56,000 gearboxes last year.",
     "How many gearboxes did the Granada plant make last year?", "56,000 gearboxes"),
    ("At the Dublin site the emergency assembly point is the north car park.",
     "Where do people assemble in an emergency at the Dublin site?", "the north car park"),
    ("Any single purchase above 750,000 euros needs the approval of the board.",
     "Above what amount does a single purchase require board approval?", "750,000 euros"),
    ("The Pelican mobile app counts 2.3 million monthly active users.",
     "How many monthly active users does the Pelican app have?", "2.3 million"),
    ("Permanent staff are entitled to 28 days of paid annual leave.",
     "How many days of paid annual leave do permanent staff get?", "28 days"),
    ("The Sapphire loyalty programme was discontinued on 30 June 2024.",
     "When was the Sapphire loyalty programme ended?", "30 June 2024"),
    ("Tomasz Kowalczyk leads the migration of the Vega servers.",
     "Who is in charge of the Vega server migration?", "Tomasz Kowalczyk"),
)

# Filler vocabulary: no digits, and none of the facts' names or key words.
_SUBJECTS = ("The regional sales team", "Our procurement office", "The finance department",
             "The customer service group", "The product management team", "Senior leadership", "The operations staff",
             "The marketing department",
             "Our logistics partners", "The quality assurance team", "The human resources office",
             "The internal audit function", "Several business units", "The project steering committee",
             "The facilities team", "Our account managers", "The legal department", "The engineering group")
_VERBS = ("reviewed", "streamlined", "documented", "evaluated", "discussed", "prioritised", "revisited", "simplified",
          "consolidated", "analysed", "monitored", "standardised", "renegotiated", "clarified", "updated", "mapped")
_OBJECTS = ("the onboarding process", "supplier contracts", "the reporting calendar", "the quarterly forecast",
            "customer feedback", "the escalation procedure", "invoice handling", "the training curriculum",
            "stock levels across sites", "the vendor shortlist", "service level targets", "the change backlog",
            "the risk register", "cost centre allocations", "the product roadmap", "meeting cadences",
            "document retention rules", "the approval workflow", "internal communication channels")
_PURPOSES = ("to reduce operational risk", "ahead of the next planning cycle", "in close cooperation with finance",
             "to improve transparency", "after consulting the affected teams", "to shorten lead times",
             "with support from external advisers", "to meet the new policy requirements", "to avoid duplicate work",
             "so that decisions can be made faster", "in line with the agreed strategy", "to lower recurring costs",
             "while keeping service quality stable", "as requested by several customers")
_OBSERVATIONS = ("Feedback from the pilot was broadly positive.", "Some open questions remain and will be followed up.",
                 "The changes will be communicated to all staff.", "Progress will be reviewed at the next meeting.",
                 "Responsibilities were assigned for each action item.", "No major obstacles were identified.",
                 "The results were shared with the relevant stakeholders.", "Further analysis is planned.",
                 "A short summary was circulated afterwards.", "The approach will be extended to other regions.",
                 "Managers were asked to nominate a contact person.", "Several improvements were suggested.")
_CONNECTORS = ("In addition,", "Meanwhile,", "As a result,", "At the same time,", "Following this,", "Overall,",
               "Separately,", "Earlier this period,")


def _sentence(rng: random.Random) -> str:
    if rng.random() < 0.2:
        return rng.choice(_OBSERVATIONS)
    text = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_OBJECTS)} {rng.choice(_PURPOSES)}."
    if rng.random() < 0.3:
        connector = rng.choice(_CONNECTORS)
        text = f"{connector} {text[0].lower()}{text[1:]}"
    return text


def _filler_paragraphs(rng: random.Random, words: int) -> list[str]:
    paragraphs, total = [], 0
    while total < words:
        sentences = []
        for _ in range(rng.randint(4, 7)):
            sentence = _sentence(rng)
            sentences.append(sentence)
            total += len(sentence.split())
            if total >= words:
                break
        paragraphs.append(" ".join(sentences))
    return paragraphs


def fact_pages(pages: int, facts: int | None = None) -> list[int]:
    """The 1-based pages holding facts: spread evenly, one fact per page, at most 20."""
    count = min(len(FACT_SENTENCES) if facts is None else facts, pages, len(FACT_SENTENCES))
    return [1 + (2 * i + 1) * pages // (2 * count) for i in range(count)]


def _new_pdf():
    from fpdf import FPDF

    pdf = FPDF(format="A4")
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(False)
    pdf.set_creation_date(_FIXED_DATE)  # deterministic bytes
    return pdf


def _fixed_date():
    import datetime

    return datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)


_FIXED_DATE = _fixed_date()


def _wrap(pdf, paragraph: str, width: float) -> list[str]:
    """Greedy line breaking with cached word widths (fpdf2's multi_cell is slow for tens of pages)."""
    space, lines, line, used = pdf.get_string_width(" "), [], [], 0.0
    for word in paragraph.split():
        size = _word_width(pdf, word)
        if line and used + space + size > width:
            lines.append(" ".join(line))
            line, used = [], 0.0
        used += (space if line else 0.0) + size
        line.append(word)
    if line:
        lines.append(" ".join(line))
    return lines


_widths: dict[tuple[str, float, str], float] = {}


def _word_width(pdf, word: str) -> float:
    key = (pdf.font_family + pdf.font_style, pdf.font_size_pt, word)
    if key not in _widths:
        _widths[key] = pdf.get_string_width(word)
    return _widths[key]


@lru_cache(maxsize=8)
def _facts_pdf(pages: int) -> tuple[bytes, tuple[Fact, ...]]:
    rng = random.Random(20250101)
    placed = dict(zip(fact_pages(pages), FACT_SENTENCES))
    pdf = _new_pdf()
    facts = []
    for number in range(1, pages + 1):
        page_rng = random.Random(rng.random())
        pdf.add_page()
        pdf.set_font("Helvetica", style="B", size=16)
        pdf.cell(0, 10, f"Page {number}", new_x="LMARGIN", new_y="NEXT")
        pdf.ln(3)
        pdf.set_font("Helvetica", size=10)
        paragraphs = _filler_paragraphs(page_rng, page_rng.randint(250, 330))
        if number in placed:
            sentence, question, answer = placed[number]
            paragraphs.insert(page_rng.randint(1, len(paragraphs)), sentence)
            facts.append(Fact(question, number, answer, sentence))
        y = pdf.get_y() + 4
        for paragraph in paragraphs:
            for line in _wrap(pdf, paragraph, pdf.w - pdf.l_margin - pdf.r_margin):
                pdf.text(pdf.l_margin, y, line)
                y += 5
            y += 3
        if y > pdf.h - 15:
            raise AssertionError(f"page {number} overflowed")  # the generator's own check: one printed page each
    return bytes(pdf.output()), tuple(facts)


def facts_pdf(pages: int = 40) -> tuple[bytes, list[Fact]]:
    """A PDF of `pages` pages headed "Page N" with filler prose and min(20, pages) facts; the facts, in page order."""
    data, facts = _facts_pdf(pages)
    return data, list(facts)


# --- Word -----------------------------------------------------------------------------------------------------------

DOCX_TITLE = "Quarterly Operations Review"
DOCX_TABLE = (("Region", "Revenue", "Growth"), ("North", "1.2 million", "4%"), ("South", "0.9 million", "-2%"),
              ("West", "1.6 million", "7%"))


def headed_docx() -> tuple[bytes, dict[str, str]]:
    """A Word file: a Title, Heading 1/2 sections each with a distinctive sentence, and a table under "Results".
    Returns the bytes and heading → distinctive sentence (the title included)."""
    import docx

    sentences = {
        DOCX_TITLE: "This review was prepared by the Halcyon planning office.",
        "Executive Summary": "Revenue at the Tamarind division rose by nine percent over the quarter.",
        "Results": "The Zephyr product line shipped its hundred thousandth unit in May.",
        "Regional Performance": "The Cobalt region opened two new showrooms in Porto and Lyon.",
        "Risks and Outlook": "A shortage of Bismuth capacitors could delay deliveries until autumn.",
    }
    levels = {"Executive Summary": 1, "Results": 1, "Regional Performance": 2, "Risks and Outlook": 1}
    document = docx.Document()
    document.core_properties.created = _FIXED_DATE.replace(tzinfo=None)
    document.core_properties.modified = _FIXED_DATE.replace(tzinfo=None)
    document.core_properties.last_modified_by = "corpus"
    document.add_heading(DOCX_TITLE, level=0)
    document.add_paragraph(sentences[DOCX_TITLE])
    for heading, level in levels.items():
        document.add_heading(heading, level=level)
        document.add_paragraph(sentences[heading])
        document.add_paragraph("The figures below are unaudited and may change after the year-end close.")
        if heading == "Results":
            table = document.add_table(rows=len(DOCX_TABLE), cols=len(DOCX_TABLE[0]))
            for row, values in zip(table.rows, DOCX_TABLE):
                for cell, value in zip(row.cells, values):
                    cell.text = value
    buffer = io.BytesIO()
    document.save(buffer)
    return _fixed_zip_times(buffer.getvalue()), sentences


_ZIP_TIME = (2025, 1, 1, 0, 0, 0)


def _fixed_zip_times(data: bytes) -> bytes:
    """The same zip with every member dated 2025-01-01 (python-docx stamps the current time): the bytes and their
    sha256 are the same on every run."""
    source, buffer = zipfile.ZipFile(io.BytesIO(data)), io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for info in source.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=_ZIP_TIME)
            fixed.compress_type, fixed.external_attr = zipfile.ZIP_DEFLATED, info.external_attr
            target.writestr(fixed, source.read(info))
    return buffer.getvalue()


# --- CSV ------------------------------------------------------------------------------------------------------------

CSV_HEADER = ("region", "month", "product", "units", "revenue_eur")


def sample_csv(rows: int = 120) -> bytes:
    """Regional sales: a header and `rows` data rows (file lines 2..rows+1); one product name holds a quoted comma."""
    rng = random.Random(7)
    regions = ("North", "South", "East", "West", "Central")
    products = ("Widget", "Gadget", "Gizmo", '"Bolts, assorted"')
    lines = [",".join(CSV_HEADER)]
    for index in range(rows):
        month = f"2024-{index % 12 + 1:02d}"
        units = rng.randint(10, 500)
        lines.append(f"{regions[index % len(regions)]},{month},{products[index % len(products)]},{units},"
                     f"{units * rng.randint(8, 30)}")
    return ("\r\n".join(lines) + "\r\n").encode()


# --- bad inputs -----------------------------------------------------------------------------------------------------

def empty_file() -> bytes:
    return b""


def _small_text_pdf(text: str = "Confidential salary bands for the current year.") -> bytes:
    pdf = _new_pdf()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 6, text)
    return bytes(pdf.output())


def encrypted_pdf(user_password: str = "s3cret", owner_password: str | None = "owner-pw") -> bytes:
    """A one-page PDF with text that needs `user_password` to open (pass "" for a permissions-only encryption that
    every viewer opens without asking). RC4-128: AES would add random initialisation vectors to every string."""
    from pypdf import PdfReader, PdfWriter
    from pypdf.generic import ArrayObject, ByteStringObject

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(_small_text_pdf())))
    writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm="RC4-128")
    identifier = getattr(writer, "_ID", None)  # pypdf makes the second half of the file ID random: fix it
    if isinstance(identifier, ArrayObject) and len(identifier) == 2:
        writer._ID = ArrayObject((identifier[0], ByteStringObject(b"document-corpus!")))
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def _png(size: tuple[int, int] = (400, 300)) -> bytes:
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    for offset in range(20, size[1] - 20, 24):  # grey bars where a scan would show lines of text
        draw.rectangle((20, offset, size[0] - 20 - offset % 60, offset + 10), fill=(90, 90, 90))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def scanned_pdf(pages: int = 2) -> bytes:
    """Pages that carry only an image of text (and the last page nothing at all): no text layer."""
    pdf = _new_pdf()
    picture = io.BytesIO(_png())
    for number in range(pages):
        pdf.add_page()
        if number < pages - 1 or pages == 1:
            picture.seek(0)
            pdf.image(picture, x=20, y=20, w=170)
    return bytes(pdf.output())


_CONTENT_TYPES = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                  b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
                  b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
                  b'<Default Extension="xml" ContentType="application/xml"/>'
                  b'<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.'
                  b'wordprocessingml.document.main+xml"/></Types>')
_RELS = (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
         b'<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
         b'<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
         b'officeDocument" Target="word/document.xml"/></Relationships>')


@lru_cache(maxsize=2)
def zip_bomb_docx(expanded_mb: int = 300) -> bytes:
    """A valid-looking .docx whose word/document.xml expands to `expanded_mb` MB of spaces (about 1.4 MB of zip).
    Deflate's fast levels keep this under half a second; nothing large is ever held in memory."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr(zipfile.ZipInfo("[Content_Types].xml", _ZIP_TIME), _CONTENT_TYPES)
        archive.writestr(zipfile.ZipInfo("_rels/.rels", _ZIP_TIME), _RELS)
        document = zipfile.ZipInfo("word/document.xml", _ZIP_TIME)
        document.compress_type = zipfile.ZIP_DEFLATED
        # Deflate's fast level: 0.4 s instead of 2 s (the ratio is still about 230:1). Python 3.13 renamed the field.
        setattr(document, "compress_level" if hasattr(zipfile.ZipInfo, "compress_level") else "_compresslevel", 1)
        with archive.open(document, "w", force_zip64=True) as member:
            member.write(b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<w:document xmlns:w="http://'
                         b'schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>')
            chunk = b" " * (1 << 20)
            for _ in range(expanded_mb):
                member.write(chunk)
            member.write(b"</w:t></w:r></w:p></w:body></w:document>")
    return buffer.getvalue()


def renamed_binary() -> bytes:
    """PNG bytes, to be attached under a document's name such as "report.pdf"."""
    return _png((64, 48))


def oversized(max_bytes: int = 20 * 1024 * 1024) -> bytes:
    """Plain text about 1.265 × `max_bytes` long (20 MB → 25.3 MB): over the limit by a readable margin."""
    line = b"Quarterly figures, line after line, nothing else of interest here.\n"
    size = max_bytes * 253 // 200
    return (line * (size // len(line) + 1))[:size]


def too_many_pages_pdf(pages: int = 501) -> bytes:
    """A PDF of `pages` short pages ("Sheet N")."""
    pdf = _new_pdf()
    pdf.set_font("Helvetica", size=10)
    for number in range(1, pages + 1):
        pdf.add_page()
        pdf.cell(0, 10, f"Sheet {number}")
    return bytes(pdf.output())
