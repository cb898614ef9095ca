"""IFEval-style checkers: one passing and one failing case per instruction id, with the reason."""

from __future__ import annotations

import pytest

from nemotron_cascade.rewards.instruction_following import (
    INSTRUCTIONS,
    check_instruction,
    count_sentences,
    detect_language,
    if_instruction_accuracy,
    if_reward,
)

LT, AL = "less than", "at least"

# (instruction id, kwargs, final answer, followed?, reason)
CASES = [
    ("keywords:existence", {"keywords": ["apple", "banana"]}, "I like apple and Banana.", True, "both keywords, any case"),
    ("keywords:existence", {"keywords": ["apple", "banana"]}, "I like apple only.", False, "one keyword missing"),
    ("keywords:frequency", {"keyword": "cat", "frequency": 3, "relation": AL}, "cat, cat and a cat", True, "three times, at least 3"),
    ("keywords:frequency", {"keyword": "cat", "frequency": 3, "relation": AL}, "cat and cat", False, "two times, at least 3"),
    ("keywords:frequency", {"keyword": "dog", "frequency": 2, "relation": LT}, "one dog", True, "once, less than 2"),
    ("keywords:frequency", {"keyword": "dog", "frequency": 2, "relation": LT}, "dog, Dog", False, "twice, less than 2"),
    ("keywords:forbidden_words", {"forbidden_words": ["bad"]}, "A badge is fine.", True, "substring of another word is allowed"),
    ("keywords:forbidden_words", {"forbidden_words": ["bad"]}, "That is BAD.", False, "forbidden word, any case"),
    ("keywords:letter_frequency", {"letter": "z", "let_frequency": 2, "let_relation": AL}, "Zebra zone", True, "two z, any case"),
    ("keywords:letter_frequency", {"letter": "z", "let_frequency": 2, "let_relation": AL}, "Zebra", False, "one z"),
    ("keywords:letter_frequency", {"letter": "#", "let_frequency": 2, "let_relation": AL}, "#one #two", True, "a non-letter is counted literally (official key 1122)"),
    ("keywords:letter_frequency", {"letter": "!", "let_frequency": 3, "let_relation": LT}, "Wow! Yes! Go!", False, "three '!' are not fewer than 3"),
    ("language:response_language", {"language": "fr"}, "Le chien court dans le parc et les enfants jouent avec la balle.", True, "French text"),
    ("language:response_language", {"language": "fr"}, "The dog runs in the park and the children play.", False, "English text"),
    ("language:response_language", {"language": "ja"}, "12345 !!!", True, "undetectable language counts as followed (IFEval)"),
    ("language:response_language", {"language": "ru"}, "Собака бежит по парку, и дети играют с мячом.", True, "Russian text"),
    ("language:response_language", {"language": "zh-CN"}, "今天天气很好，我们去公园散步吧。", True, "zh-CN and langdetect's zh-cn are both zh"),
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": LT}, "One. Two!", True, "two sentences < 3"),
    ("length_constraints:number_sentences", {"num_sentences": 3, "relation": LT}, "One. Two? Three.", False, "three sentences"),
    ("length_constraints:number_sentences", {"num_sentences": 2, "relation": AL}, "Dr. Smith paid 3.5 dollars. He left.", True, "abbreviation and decimal do not split"),
    ("length_constraints:number_sentences", {"num_sentences": 4, "relation": LT}, "1. kits: these help.\n2. clinics: these heal.\n3. loans: these fund.", True, "a numbered list is 3 sentences, not 6 (official key 1967)"),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "First part.\n***\nSecond part.", True, "two paragraphs split by ***"),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "Only one paragraph.", False, "one paragraph"),
    ("length_constraints:number_paragraphs", {"num_paragraphs": 2}, "A\n***\n***\nB", False, "an empty paragraph in between"),
    ("length_constraints:number_words", {"num_words": 5, "relation": AL}, "one two three four five", True, "five words"),
    ("length_constraints:number_words", {"num_words": 5, "relation": AL}, "one two", False, "two words"),
    ("length_constraints:number_words", {"num_words": 3, "relation": LT}, "one two", True, "two words < 3"),
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "however"}, "Intro here.\n\nHowever, this holds.", True, "second paragraph starts with However"),
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "however"}, "Intro here.\n\nBut this holds.", False, "wrong first word"),
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 1, "first_word": "intro"}, "Intro.\n\nTwo.\n\nThree.", False, "three paragraphs, two required"),
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "summary"}, "Intro.\n\nSummary: it holds.", False, "':' stays in the word, as IFEval (official key 1954)"),
    ("length_constraints:nth_paragraph_first_word", {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "summary"}, 'Intro.\n\n"Summary," she said.', True, "leading quote dropped, cut at the comma"),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "Dear [name], at [address].", True, "two placeholders"),
    ("detectable_content:number_placeholders", {"num_placeholders": 2}, "Dear [name].", False, "one placeholder"),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hello.\nP.S. see you", True, "postscript line"),
    ("detectable_content:postscript", {"postscript_marker": "P.P.S"}, "Hello.\np. p. s. later", True, "P.P.S tolerates spaces and case"),
    ("detectable_content:postscript", {"postscript_marker": "P.S."}, "Hello, see you.", False, "no postscript"),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "Intro\n* one\n- two\n---", True, "two bullets; a --- rule is not one"),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "* one\n* two\n* three", False, "three bullets"),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "-one\n  -two", True, "'-' needs no space after it (IFEval's ^\\s*-.*$)"),
    ("detectable_format:number_bullet_lists", {"num_bullets": 2}, "*one*\n* two\n**bold** line", True, "a single '*' starts a bullet, '**' does not"),
    ("detectable_format:number_bullet_lists", {"num_bullets": 1}, "- one\n***\n- - -\n___", True, "thematic breaks are rules, not bullets (deliberate)"),
    ("detectable_format:constrained_response", {}, "My answer is yes.", True, "one of the options"),
    ("detectable_format:constrained_response", {}, "Yes.", False, "not one of the options"),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*one* and **two**", True, "single and double asterisks"),
    ("detectable_format:number_highlighted_sections", {"num_highlights": 2}, "*one* and ** **", False, "an empty highlight does not count"),
    ("detectable_format:multiple_sections", {"section_spliter": "Section", "num_sections": 2}, "Section 1\nA\nSection 2\nB", True, "two sections"),
    ("detectable_format:multiple_sections", {"section_spliter": "Section", "num_sections": 2}, "Section 1\nA and B", False, "one section"),
    ("detectable_format:json_format", {}, '```json\n{"a": 1}\n```', True, "JSON in a json fence"),
    ("detectable_format:json_format", {}, "{a: 1}", False, "not JSON"),
    ("detectable_format:title", {}, "<<Ode to Joy>>\nRoses are red.", True, "title in double angular brackets"),
    ("detectable_format:title", {}, "<<  >>\nRoses are red.", False, "empty title"),
    ("combination:two_responses", {}, "Answer one.\n******\nAnswer two.", True, "two different responses"),
    ("combination:two_responses", {}, "Same.\n******\nSame.", False, "the two responses are identical"),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Write a poem."}, "write a poem. Roses are red.", True, "prompt repeated first"),
    ("combination:repeat_prompt", {"prompt_to_repeat": "Write a poem."}, "Sure! Write a poem.", False, "words before the prompt"),
    ("startend:end_checker", {"end_phrase": "Any other questions?"}, "Done. Any other questions?", True, "ends with the phrase"),
    ("startend:end_checker", {"end_phrase": "Any other questions?"}, "Any other questions? Bye.", False, "words after the phrase"),
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": AL}, "This is VERY IMPORTANT.", True, "two capital words"),
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": AL}, "This is VERY important.", False, "one capital word"),
    ("change_case:capital_word_frequency", {"capital_frequency": 2, "capital_relation": LT}, "A STATE-OF-THE-ART idea", False, "A and the hyphenated word: two"),
    ("change_case:english_capital", {}, "THE DOG IS HAPPY AND THE CAT IS TOO.", True, "English in capitals"),
    ("change_case:english_capital", {}, "The dog is happy.", False, "not all capitals"),
    ("change_case:english_capital", {}, "LE CHIEN EST DANS LE PARC ET LES ENFANTS JOUENT.", False, "capitals but French"),
    ("change_case:english_capital", {}, "YES", False, "langdetect does not call 'YES' English (official key 2341)"),
    ("change_case:english_capital", {}, "2024 - 12 - 01", False, "no letters: isupper() is False"),
    ("change_case:english_lowercase", {}, "the dog is happy and the cat is too.", True, "English in lower case"),
    ("change_case:english_lowercase", {}, "the dog is Happy.", False, "a capital letter"),
    ("change_case:english_lowercase", {}, "etchings", False, "a single word langdetect does not call English (official key 202)"),
    ("punctuation:no_comma", {}, "No commas here.", True, "no comma"),
    ("punctuation:no_comma", {}, "Yes, a comma.", False, "a comma"),
    ("startend:quotation", {}, '"A quoted answer."', True, "wrapped in double quotes"),
    ("startend:quotation", {}, "A quoted answer.", False, "no quotes"),
]


@pytest.mark.parametrize(("instruction_id", "kwargs", "answer", "followed", "reason"), CASES, ids=[c[4] for c in CASES])
def test_checker_table(instruction_id, kwargs, answer, followed, reason):
    assert check_instruction(answer, instruction_id, kwargs) is followed, reason


def test_table_covers_every_instruction_both_ways():
    assert len(INSTRUCTIONS) == 25
    outcomes = {(c[0], c[3]) for c in CASES}
    missing = [(i, f) for i in INSTRUCTIONS for f in (True, False) if (i, f) not in outcomes]
    assert not missing


# (response, instruction ids, kwargs, strict reward, loose reward, reason)
MODE_CASES = [
    ('Sure, here it is:\n"A quoted answer."', ["startend:quotation"], [{}], 0.0, 1.0, "loose drops the chatty first line"),
    ("No commas here\nThanks, bye", ["punctuation:no_comma"], [{}], 0.0, 1.0, "loose drops the last line"),
    ("**My answer is yes.**\n", ["detectable_format:constrained_response"], [{}], 1.0, 1.0, "both modes"),
    ("<<Title>>\n*Section 1*", ["detectable_format:title", "detectable_format:json_format"], [{}, {}], 0.0, 0.0, "one instruction fails in both modes"),
]


@pytest.mark.parametrize(("response", "ids", "kwargs", "strict", "loose", "reason"), MODE_CASES, ids=[c[5] for c in MODE_CASES])
def test_strict_and_loose(response, ids, kwargs, strict, loose, reason):
    assert if_reward(response, ids, kwargs) == strict, reason
    assert if_reward(response, ids, kwargs, loose=True) == loose, reason


def test_reward_needs_every_instruction_and_reports_each():
    ids = ["punctuation:no_comma", "length_constraints:number_words"]
    kwargs = [{}, {"num_words": 3, "relation": "at least", "keywords": None}]  # None-valued extras are ignored
    assert if_instruction_accuracy("Hi, you two there", ids, kwargs) == [False, True]
    assert if_reward("Hi, you two there", ids, kwargs) == 0.0
    assert if_reward("Hi you two there", ids, kwargs) == 1.0


@pytest.mark.parametrize(
    ("response", "expected", "reason"),
    [
        ("<think>commas, commas, commas</think>No commas here", 1.0, "only the final answer is judged"),
        ("<think>No commas here", 0.0, "an unclosed think block earns 0"),
        ("<think>fine</think>   ", 0.0, "an empty final answer follows nothing (IFEval)"),
    ],
    ids=["think ignored", "unclosed think", "empty answer"],
)
def test_final_answer_only(response, expected, reason):
    assert if_reward(response, ["punctuation:no_comma"], [{}]) == expected, reason


@pytest.mark.parametrize(
    ("ids", "kwargs", "error", "words"),
    [
        (["keywords:made_up"], [{}], ValueError, ["keywords:made_up"]),
        (["length_constraints:number_words"], [{"relation": "at least"}], ValueError, ["length_constraints:number_words", "num_words"]),
        (["length_constraints:number_words"], [{"num_words": "5", "relation": "at least"}], TypeError, ["length_constraints:number_words", "num_words"]),
        (["length_constraints:number_words"], [{"num_words": 5, "relation": "at most"}], ValueError, ["relation", "at most"]),
        (["keywords:existence"], [{"keywords": "apple"}], TypeError, ["keywords:existence", "keywords"]),
        (["keywords:letter_frequency"], [{"letter": "ab", "let_frequency": 1, "let_relation": "at least"}], ValueError, ["letter"]),
        (["keywords:letter_frequency"], [{"letter": " ", "let_frequency": 1, "let_relation": "at least"}], ValueError, ["letter"]),
        (["language:response_language"], [{"language": "xx"}], ValueError, ["language", "xx"]),
        (["punctuation:no_comma"], [{"comma": True}], TypeError, ["punctuation:no_comma", "comma"]),
        (["punctuation:no_comma", "startend:quotation"], [{}], ValueError, ["2 instruction ids but 1"]),
        ([], [], ValueError, ["empty"]),
        (["punctuation:no_comma"], ["{}"], TypeError, ["punctuation:no_comma", "dict"]),
    ],
    ids=[
        "unknown id is named",
        "missing field is named",
        "wrong-typed field is named",
        "unknown relation",
        "keywords must be a list",
        "letter must be one letter",
        "letter must not be blank",
        "unsupported language",
        "unexpected non-None kwarg",
        "length mismatch",
        "no instructions",
        "kwargs entry not a dict",
    ],
)
def test_bad_input_is_loud(ids, kwargs, error, words):
    with pytest.raises(error) as raised:
        if_reward("<think>unclosed", ids, kwargs)  # validated even when the answer scores 0 anyway
    for word in words:
        assert word in str(raised.value)


def test_helpers_are_deterministic():
    assert count_sentences("Mr. Brown went home. It rained! Did he mind? No") == 4
    text = "Der Hund läuft im Park und die Kinder spielen mit dem Ball."
    assert {detect_language(text) for _ in range(5)} == {"de"}
    # short answers are where unseeded langdetect flips; the seeded detector never does
    for short in ("YES", "A", "etchings", "coastal elegance properties"):
        assert len({detect_language(short) for _ in range(5)}) == 1, short


@pytest.mark.parametrize(
    ("text", "expected", "reason"),
    [
        ("12345 !!!", None, "no letters: nothing to detect"),
        ("The dog runs in the park and the children play with the ball.", "en", "English"),
        ("今天天气很好，我们去公园散步吧。", "zh", "langdetect's zh-cn is reported as zh"),
    ],
    ids=["no features", "english", "chinese"],
)
def test_detect_language(text, expected, reason):
    assert detect_language(text) == expected, reason
