#!/usr/bin/env python3
"""Check the built book (mdbook build docs/book): no dangling link, no
missing image, no anchor that leads nowhere, no include left unexpanded;
and that every chapter has what issue 15 asks of it: an included code file,
a figure, a "Measured" section, and an exercise whose check is in tests/exercises.rs.

    mdbook build docs/book && python3 scripts/check_book.py docs/book
"""

import html.parser
import os
import re
import sys
import urllib.parse


class Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if name == "id" and value:
                self.ids.add(value)
            if name in ("href", "src") and value:
                self.links.append((tag, value))


# The widest figure the page shows at its own size (mdbook's content column,
# with room to spare); wider ones are scaled down with their text.
MAX_WIDTH_PX = 1100


def parse(path, cache={}):
    if path not in cache:
        p = Links()
        with open(path, encoding="utf-8") as f:
            p.feed(f.read())
        cache[path] = p
    return cache[path]


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else "docs/book"
    src, out = os.path.join(root, "src"), os.path.join(root, "book")
    problems = []

    # Every chapter: an include, a figure, a measured number.
    tests_rs = os.path.join(os.path.dirname(os.path.abspath(root)), "..", "tests", "exercises.rs")
    exercise_tests = open(os.path.normpath(tests_rs), encoding="utf-8").read()
    for name in sorted(os.listdir(src)):
        if not re.match(r"ch\d\d-.*\.md$", name):
            continue
        text = open(os.path.join(src, name), encoding="utf-8").read()
        for what, pattern in [("an included code file", r"\{\{#include "),
                              ("a figure", r"!\[[^\]]*\]\(figures/[^)]+\.svg\)"),
                              ("a Measured section", r"^## Measured$")]:
            if not re.search(pattern, text, re.M):
                problems.append(f"{name}: no {what}")
        # ... and an exercise of its own number, checked: the learner's
        # ignored test, and the tests that its solution passes and its stub fails.
        number = int(name[2:4])
        if not re.search(rf"^## Exercise {number}:", text, re.M):
            problems.append(f"{name}: no '## Exercise {number}:' section")
        for what, pattern in [
                ("an #[ignore]d check for the learner",
                 rf"#\[ignore[^\]]*\]\s*fn exercise_{number}_"),
                ("a test that the solution passes", rf"fn exercise_{number}_solution_passes_the_\w*check"),
                ("a test that the stub fails", rf"fn exercise_{number}_stub_fails_the_\w*check")]:
            if not re.search(pattern, exercise_tests):
                problems.append(f"{name}: tests/exercises.rs has no {what} of exercise {number}")

    # Every figure is well-formed XML (a browser shows a broken image
    # otherwise) and no wider than the page, where a wider one is shrunk
    # until its text cannot be read.
    import xml.dom.minidom
    figures = os.path.join(src, "figures")
    for name in sorted(os.listdir(figures)):
        if not name.endswith(".svg"):
            continue
        path = os.path.join(figures, name)
        try:
            svg = xml.dom.minidom.parse(path).documentElement
        except Exception as e:
            problems.append(f"figures/{name}: not well-formed XML ({e})")
            continue
        width = svg.getAttribute("width")
        m = re.match(r"([0-9.]+)(pt|px)?$", width)
        if m:
            px = float(m.group(1)) * (4 / 3 if m.group(2) == "pt" else 1)
            if px > MAX_WIDTH_PX:
                problems.append(f"figures/{name}: {px:.0f} px wide, more than the page's {MAX_WIDTH_PX}")

    # Every link and image of the built HTML resolves.
    pages = 0
    for dirpath, _, files in os.walk(out):
        for f in files:
            if not f.endswith(".html"):
                continue
            page = os.path.join(dirpath, f)
            pages += 1
            text = open(page, encoding="utf-8").read()
            if "{{#include" in text:
                problems.append(f"{os.path.relpath(page, out)}: an include was not expanded")
            for tag, link in parse(page).links:
                url = urllib.parse.urlparse(link)
                if url.scheme in ("http", "https", "mailto", "data", "javascript"):
                    continue
                # 404.html's <base href="/"> names the site's root, unknown here.
                if tag == "base" or link.startswith("/"):
                    continue
                target = page if not url.path else os.path.normpath(
                    os.path.join(dirpath, urllib.parse.unquote(url.path)))
                if os.path.isdir(target):
                    target = os.path.join(target, "index.html")
                if not os.path.exists(target):
                    problems.append(
                        f"{os.path.relpath(page, out)}: <{tag}> {link} → missing {os.path.relpath(target, out)}")
                    continue
                if url.fragment and target.endswith(".html") and url.fragment not in parse(target).ids:
                    problems.append(f"{os.path.relpath(page, out)}: {link} → no id {url.fragment!r}")

    if problems:
        print("\n".join(problems))
        sys.exit(f"book check FAILED: {len(problems)} problems")
    print(f"book check: {pages} pages, every link, image and anchor resolves; every figure parses and fits; every chapter has code, a figure, a measurement and a checked exercise")


if __name__ == "__main__":
    main()
