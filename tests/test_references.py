"""The back matter: the reference list shows only works the book cites, in the author-year form
of the citations; the How-to-cite page and CITATION.cff cite the same thing."""
import re

import yaml
from pybtex.database import parse_file

from book_sources import ROOT, markdown_text, toc_files

import author_year_bibliography as ayb

BIB = parse_file(str(ROOT / "book" / "references.bib"))


def cited_keys() -> set[str]:
    keys = set()
    for path in toc_files():
        for group in re.findall(r"\{cite(?::[a-z]+)?\}`([^`]+)`", markdown_text(path)):
            keys |= {k.strip() for k in group.split(",")}
    return keys


def test_the_reference_list_holds_only_cited_works():
    """The bibliography directive lists the cited entries (no :all: or :notcited:), and every
    cited key exists, so every entry of the list is cited somewhere in the book."""
    text = (ROOT / "book" / "references.md").read_text()
    block = re.search(r"```\{bibliography\}\n(.*?)```", text, flags=re.S)
    assert block, "references.md has no bibliography directive"
    assert not re.search(r":(all|notcited):", block.group(1)), "the list must show cited works only"
    assert cited_keys() <= set(BIB.entries), sorted(cited_keys() - set(BIB.entries))


def test_the_list_uses_the_author_year_labels_of_the_citations():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]
    assert config["config"]["bibtex_reference_style"] == "author_year"
    assert config["config"]["bibtex_default_style"] == ayb.NAME
    assert config["local_extensions"]["author_year_bibliography"] == "book/_ext"
    labels = {key: ayb.author_year_label(entry) for key, entry in BIB.entries.items()}
    assert labels["dempster1977"] == "Dempster et al., 1977"
    assert labels["celeux1992"] == "Celeux and Govaert, 1992"
    assert labels["cappe2009"] == "Cappé and Moulines, 2009"
    assert labels["jensen1906"] == "Jensen, 1906"


def test_labels_that_would_coincide_get_letters():
    from pybtex.database import Entry, Person
    a = Entry("article", fields={"year": "2000", "title": "A"}, persons={"author": [Person("Smith, J.")]})
    b = Entry("article", fields={"year": "2000", "title": "B"}, persons={"author": [Person("Smith, J.")]})
    c = Entry("article", fields={"year": "2001", "title": "C"}, persons={"author": [Person("Smith, J.")]})
    assert list(ayb.AuthorYearLabelStyle().format_labels([a, b, c])) == \
        ["Smith, 2000a", "Smith, 2000b", "Smith, 2001"]


def test_dois_are_well_formed_and_journal_issues_are_real():
    for key, entry in BIB.entries.items():
        if "doi" in entry.fields:
            assert re.fullmatch(r"10\.\d{4,9}/\S+", entry.fields["doi"]), key
    # JMLR volumes are not divided into issues (issue 12 of the review: hoffman2013 had number 4)
    for key, entry in BIB.entries.items():
        if entry.fields.get("journal") == "Journal of Machine Learning Research" and key != "mohamed2020":
            assert "number" not in entry.fields, key


def bibtex_block():
    text = (ROOT / "book" / "how_to_cite.md").read_text()
    block = re.search(r"```bibtex\n(.*?)```", text, flags=re.S).group(1)
    kind = re.match(r"@(\w+)\{", block).group(1)
    fields = dict(re.findall(r"^\s*(\w+)\s*=\s*\{(.*)\},?\s*$", block, flags=re.M))
    return kind, {k: v.replace("{", "").replace("}", "") for k, v in fields.items()}


def test_how_to_cite_and_citation_cff_cite_the_same_book():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["type"] in {"software", "dataset"}
    pref = cff["preferred-citation"]
    kind, bib = bibtex_block()
    assert kind == pref["type"] == "book"
    assert bib["title"] == pref["title"] == cff["title"]
    assert bib["author"] == pref["authors"][0]["name"] == cff["authors"][0]["name"]
    assert int(bib["year"]) == pref["year"] == int(cff["date-released"][:4])
    assert bib["edition"] == pref["edition"] == str(cff["version"])
    assert bib["url"] == pref["url"] == cff["url"]
    assert bib["note"] == pref["notes"]
    text = (ROOT / "book" / "how_to_cite.md").read_text()
    assert "a DOI where one exists" in text


def test_the_edition_is_one_number_everywhere():
    """emlib.__version__ is the edition: CITATION.cff, the How-to-cite entry and the changelog agree."""
    import emlib

    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    _, bib = bibtex_block()
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert cff["version"] == cff["preferred-citation"]["edition"] == bib["edition"] == emlib.__version__
    assert re.search(rf"^## {re.escape(emlib.__version__)} \({cff['date-released']}\)$", changelog, re.M), \
        "CHANGELOG.md has no section for this edition dated as CITATION.cff"
