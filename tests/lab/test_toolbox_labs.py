"""The quick variants of the classic-toolbox labs (mutual-info, boundaries, sorting, search): each runs end to end,
its claim holds, and figures point the claim's way."""

import pytest


def check_mutual_info(data: dict) -> None:
    assert data["max_gap_to_sklearn_bits"] < 1e-9
    top = data["top_characters"]
    assert top[0]["MI (bits)"] >= top[-1]["MI (bits)"] > 0 and "差" in [row["character"] for row in top]
    small = data["rows"][1]
    assert small["accuracy, top-k by MI"] > small["accuracy, top-k by frequency"]


def check_boundaries(data: dict) -> None:
    rows = {row["learner"]: row for row in data["rows"]}
    assert rows["logistic regression"]["straightness (min over data)"] > 0.99 > rows["decision tree"]["straightness (min over data)"]
    assert rows["k-nearest neighbours"]["circles acc."] > rows["linear SVM"]["circles acc."] + 0.2
    assert rows["naive Bayes"]["ChnSentiCorp acc."] == rows["naive Bayes"]["sklearn acc."]
    results = data["results"]
    assert all(results[name][f"{d} agreement with sklearn"] >= 0.98 for name in ("logistic regression", "linear SVM")
               for d in ("moons", "circles", "ChnSentiCorp"))


def check_sorting(data: dict) -> None:
    rows = {row["algorithm"]: row for row in data["rows"]}
    assert rows["bubble"]["exponent of count"] > 1.8 > 1.4 > rows["merge"]["exponent of count"]
    assert rows["quick"]["stable"] is False and rows["quick"]["counterexample (keys → sorted (position, key))"] != "–"
    assert 4 <= data["crossover"]["first_n"] <= 96


def check_search(data: dict) -> None:
    rows = {row["method"]: row for row in data["rows"]}
    assert rows["grid"]["trials"] == 1 and rows["random"]["trials"] == 3  # 3 trials: a one-point grid (4 ranges)
    assert all(0 < row["held-out accuracy of the best"] <= 1 for row in data["rows"])
    assert data["trials"]["TPE"]["params"][0] != data["trials"]["TPE"]["params"][1]


CHECKS = {"mutual-info": check_mutual_info, "boundaries": check_boundaries, "sorting": check_sorting,
          "search": check_search}


@pytest.mark.parametrize("name", list(CHECKS))
def test_quick_lab_holds(name, quick_lab):
    CHECKS[name](quick_lab(name))
