from nlplab.data.overlap import deduplicate, normalize, occurrences, overlapping


def test_normalize_keeps_letters_and_digits_only():
    assert normalize("房间 很好！！ＡＢｃ１２３ 😀") == "房间很好abc123"


def test_occurrences_finds_every_needle_inside_every_haystack():
    needles = ["abcdef", "cdefgh", "zzzzzz", "abc", "abcdef"]
    haystacks = ["xxabcdefghxx", "zzzzzzz", "abcdeg"]
    assert sorted(occurrences(needles, haystacks, k=6)) == [(0, 0), (1, 0), (2, 1), (4, 0)]


def test_occurrences_agrees_with_a_plain_search():
    import random

    rng = random.Random(0)
    alphabet = "好的不是很"
    haystacks = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(50)]
    needles = ["".join(rng.choice(alphabet) for _ in range(rng.randint(3, 8))) for _ in range(200)]
    plain = {(i, j) for i, n in enumerate(needles) for j, h in enumerate(haystacks) if len(n) >= 4 and n in h}
    assert set(occurrences(needles, haystacks, k=4)) == plain


def test_overlapping_catches_equal_contained_and_containing_texts():
    held_out = ["这家酒店的服务非常好", "太差", "质量一般般吧还行"]
    documents = [
        "这家酒店的服务非常好！",                        # equal after normalisation
        "我们住了三天。这家酒店的 服务非常好，下次还来。",  # a held-out text inside a longer document
        "质量一般般",                                    # too short to be looked for inside others
        "一般般吧还行",                                  # a document inside a held-out text
        "太差",                                          # a short text: equal
        "太差了，不会再来",                              # a short held-out text is only matched whole
        "房间干净，早餐丰富",
    ]
    assert overlapping(documents, held_out, min_chars=6) == {0, 1, 3, 4}


def test_deduplicate_keeps_the_first_of_equal_normalised_texts():
    assert deduplicate(["好的。", "好的", " ", "不好", "好 的!"]) == ["好的。", "不好"]
