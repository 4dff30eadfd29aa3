from models import ARTIFACTS
from workers.asr.punctuation import CASES, MARKS, Punctuator, labelled, written


def test_labels_follow_the_words_the_recogniser_writes() -> None:
    found = labelled("It cost five dollars -- the F.B.I. said, \"Oswald's rifle\"; Mr. O'Neil asked: why?")
    assert [w for w, _, _ in found] == ["it", "cost", "five", "dollars", "the", "f", "b", "i", "said", "oswald's",
                                        "rifle", "mr", "o'neil", "asked", "why"]
    cases = {w: CASES[c] for w, c, _ in found}
    assert cases["it"] == "capitalized" and cases["the"] == "lower" and cases["oswald's"] == "capitalized"
    marks = {w: MARKS[m] for w, _, m in found}
    assert marks["dollars"] == "," and marks["said"] == "," and marks["rifle"] == "," and marks["asked"] == ","
    assert marks["i"] == "." and marks["mr"] == "." and marks["why"] == "?" and marks["cost"] == ""
    assert labelled("NASA and the FBI") == [("nasa", 2, 0), ("and", 0, 0), ("the", 0, 0), ("fbi", 2, 0)]
    assert labelled("-- 42 $") == []


def test_written_gives_a_plain_line_back_and_always_capitalises_i() -> None:
    line = "Why was my card declined, and where is the ATM?"
    assert written(*map(list, zip(*labelled(line), strict=True))) == line
    assert written(["i", "think", "i'm", "late"], [0, 0, 0, 0], [0, 0, 0, 2]) == "I think I'm late."


def test_the_shipped_tagger_writes_a_question_a_request_and_a_name_as_written() -> None:
    punctuator = Punctuator.load(ARTIFACTS / "asr")
    assert punctuator is not None
    assert punctuator.display("why was my card declined".split()) == "Why was my card declined?"
    assert punctuator.display("i want to talk to a person".split()).startswith("I want to talk to a person")
    assert "Dallas" in punctuator.display("he arrived at dallas on the twenty second".split())
    assert punctuator.display([]) == ""
    assert punctuator.display(["zzyzx", "[unk]"])  # words it never saw still get written


def test_a_model_directory_without_a_tagger_has_none(tmp_path) -> None:
    assert Punctuator.load(tmp_path) is None
