import json

import pytest

from artcap_lib.data.artpedia import ArtpediaError, human_caption, load_artworks, validate_file
from artcap_lib.cli import main


def entry(**changes):
    base = {"title": "Maestà", "img_url": "https://upload.wikimedia.org/a/b/Maesta.jpg", "year": 1280,
            "visual_sentences": ["The throne is gold.", "Angels surround the Virgin."],
            "contextual_sentences": ["Painted around 1280."], "split": "train"}
    base.update(changes)
    return base


def write(tmp_path, data, name="artpedia.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_a_valid_file_passes_and_exits_zero(tmp_path, capsys):
    path = write(tmp_path, {"2": entry(), "3": entry(split="test", img_url="https://x.org/3.jpg")})
    assert validate_file(path) == []
    assert main(["data", "validate", str(path)]) == 0
    assert "valid (0 error(s)" in capsys.readouterr().out


def test_the_authors_sample_of_the_real_file_is_valid(reference_dir):
    path = f"{reference_dir}/misc/test_artpedia.json"
    artworks = load_artworks(path)        # the real schema, plus the authors' file_path
    assert human_caption(artworks["2"]).startswith("It is also stylistically earlier")


def test_human_caption_joins_visual_sentences_with_one_space():
    assert human_caption(entry()) == "The throne is gold. Angels surround the Virgin."


@pytest.mark.parametrize("bad, where", [
    ({"1": entry(split="holdout")}, "entry 1 / split: unknown split 'holdout'"),
    ({"1": entry(visual_sentences=[])}, "entry 1 / visual_sentences: empty"),
    ({"1": entry(visual_sentences=["  "])}, "entry 1 / visual_sentences: empty"),
    ({"1": entry(visual_sentences="one string")}, "entry 1 / visual_sentences: wrong type str"),
    ({"1": entry(visual_sentences=["ok", 7])}, "entry 1 / visual_sentences[1]: must be a string"),
    ({"1": entry(img_url="ftp://x.org/a.jpg")}, "entry 1 / img_url: not an http(s) URL"),
    ({"1": entry(img_url="images/a.jpg")}, "entry 1 / img_url: not an http(s) URL"),
    ({"1": entry(year="1280")}, "entry 1 / year: wrong type str"),
    ({"1": {k: v for k, v in entry().items() if k != "title"}}, "entry 1 / title: missing key"),
    ({"1": ["not", "an", "object"]}, "entry 1: entry must be an object"),
    ([entry()], "top level must be an object"),
])
def test_each_kind_of_problem_is_named_with_entry_and_field(tmp_path, capsys, bad, where):
    path = write(tmp_path, bad)
    assert main(["data", "validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert where in out and "INVALID" in out


def test_every_problem_is_listed_not_only_the_first(tmp_path, capsys):
    path = write(tmp_path, {"1": entry(split="x"), "2": entry(year=None, title=3, img_url="https://x.org/2.jpg"),
                            "3": entry(img_url="https://x.org/3.jpg")})
    assert main(["data", "validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert "entry 1 / split" in out and "entry 2 / title" in out and "entry 3" not in out
    assert "(2 error(s)" in out       # year None is allowed: some paintings have no known year


def test_invalid_json_and_non_utf8_are_errors(tmp_path, capsys):
    broken = tmp_path / "broken.json"
    broken.write_text('{"1": {"title": "x",}', encoding="utf-8")
    assert main(["data", "validate", str(broken)]) == 1
    assert "invalid JSON at line 1" in capsys.readouterr().out
    latin = tmp_path / "latin1.json"
    latin.write_bytes(json.dumps({"1": entry(title="Maestà")}, ensure_ascii=False).encode("latin-1"))
    assert main(["data", "validate", str(latin)]) == 1
    assert "not UTF-8" in capsys.readouterr().out


def test_duplicate_urls_are_warnings_not_errors(tmp_path, capsys):
    path = write(tmp_path, {"1": entry(), "2": entry()})
    assert main(["data", "validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert "warning: entry 2 / img_url: same image URL as entry 1" in out and "1 warning(s)" in out


def test_load_artworks_raises_with_every_problem(tmp_path):
    path = write(tmp_path, {"1": entry(split="x"), "2": entry(visual_sentences=[])})
    with pytest.raises(ArtpediaError) as err:
        load_artworks(path)
    assert [p.severity for p in err.value.problems] == ["error", "error", "warning"] and str(path) in str(err.value)


@pytest.mark.parametrize("bad_id", ["../../x", "a/b", "/etc/passwd", "*", ".hidden", "x" * 300, "", "a b", "é"])
def test_ids_that_could_act_as_paths_or_globs_are_errors_naming_the_entry(tmp_path, bad_id):
    path = write(tmp_path, {bad_id: entry(), "3": entry(img_url="https://x.org/3.jpg")})
    problems = validate_file(path)
    assert [(p.field, p.severity) for p in problems] == [("id", "error")]
    assert "become file names" in problems[0].message and len(str(problems[0])) < 400
    with pytest.raises(ArtpediaError, match="entry .* / id: id"):
        load_artworks(path)


@pytest.mark.parametrize("good_id", ["2", "1.5", "Q12418", "a_b-c.d", "x" * 128])
def test_ids_of_letters_digits_dots_dashes_pass(tmp_path, good_id):
    assert validate_file(write(tmp_path, {good_id: entry()})) == []


def test_an_entry_written_twice_is_an_error_not_a_silent_loss(tmp_path):
    path = tmp_path / "artpedia.json"
    one, two = json.dumps(entry()), json.dumps(entry(title="Other", img_url="https://x.org/other.jpg"))
    path.write_text(f'{{"2": {one}, "3": {one.replace("Maesta", "M3")}, "2": {two}}}', encoding="utf-8")
    problems = validate_file(path)
    assert [(p.entry, p.severity) for p in problems] == [("2", "error")]
    assert "appears twice" in problems[0].message
    path.write_text('{"2": {"title": "a", "title": "b"}}', encoding="utf-8")
    assert [(p.field, "twice" in p.message) for p in validate_file(path)] == [("title", True)]
