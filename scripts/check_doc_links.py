#!/usr/bin/env python3
"""Fails if the generated docs show an intra-doc link as literal brackets.

rustdoc resolves `[`name`]` and, when the target lives in a crate whose docs are not in
the output folder (a dependency under `--no-deps`, or a sibling crate documented later in
the same run) and that crate sets no `html_root_url`, it prints the brackets as text
without any warning: `rustdoc::broken_intra_doc_links` only fires for paths that do not
resolve. Link within the crate, or to an explicit URL, instead.

Usage: scripts/check_doc_links.py [DOC_DIR]   (default: $CARGO_TARGET_DIR/doc or target/doc)
"""
import os
import re
import sys

CRATES = ["reauth", "reauth_core", "reauth_drive", "reauth_reqwest", "reauth_ureq", "reauth_testkit"]
# Brackets around rendered code or a bare path, as Markdown leaves an unresolved link.
LITERAL = re.compile(r"(?<![&;\w])\[(<code>[^<]{1,80}</code>|[A-Za-z_][A-Za-z0-9_:]{0,80})\](?![(:])")


def prose(html):
    # Implementations of foreign traits carry the foreign crate's docs, not ours.
    cut = re.search(r'id="(trait|synthetic|blanket)-implementations"', html)
    if cut:
        html = html[: cut.start()]
    html = re.sub(r"<!--.*?-->", "", html, flags=re.S)
    # Signatures (`&[u8]`) are code, not prose.
    html = re.sub(r'<(h[1-6]|code)\b[^>]*class="code-header".*?</\1>', "", html, flags=re.S)
    # Code blocks and the source view legitimately contain brackets.
    html = re.sub(r"<pre\b.*?</pre>", "", html, flags=re.S)
    html = re.sub(r"<script\b.*?</script>", "", html, flags=re.S)
    return re.sub(r"<a\b[^>]*>.*?</a>", "", html, flags=re.S)


def main():
    doc = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.environ.get("CARGO_TARGET_DIR", "target"), "doc")
    found = []
    for crate in CRATES:
        root = os.path.join(doc, crate)
        for folder, _, files in os.walk(root):
            for name in files:
                if not name.endswith(".html"):
                    continue
                path = os.path.join(folder, name)
                with open(path, encoding="utf-8") as f:
                    text = prose(f.read())
                for m in LITERAL.finditer(text):
                    found.append(f"{os.path.relpath(path, doc)}: {m.group(0)}")
    for line in found:
        print(line)
    if found:
        print(f"{len(found)} intra-doc link(s) rendered as text", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
