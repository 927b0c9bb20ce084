"""Small real files of every type the indexer converts, made here (no fixtures on disk)."""

import json


def tiny_pdf(text: str) -> bytes:
    """A valid one-page PDF showing ``text`` (Helvetica), with a correct cross-reference table."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


# key suffix -> (bytes, a phrase its chunks must contain)
SAMPLES = {
    "notes.txt": (b"Plain text notes about the walrus operator in Python.\n", "walrus operator"),
    "guide.md": (b"# Guide\n\nUse *pathlib* to join `paths` portably.\n", "pathlib to join paths"),
    "page.html": (
        b"<html><head><title>Queues</title><style>p{color:red}</style></head>"
        b"<body><nav>Home</nav><p>A <b>deque</b> pops from both ends.</p><script>track()</script></body></html>",
        "deque pops from both ends",
    ),
    "paper.pdf": (tiny_pdf("Heap queues keep the smallest item first"), "Heap queues keep the smallest item first"),
    "record.json": (
        json.dumps({"content": "Decimal arithmetic avoids binary rounding.", "title": "decimal"}).encode(),
        "Decimal arithmetic avoids binary rounding",
    ),
}
