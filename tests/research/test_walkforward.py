import pytest

from app.research.walkforward import WindowError, choose, split


def test_rolling_windows_test_each_day_once_after_its_train_days():
    steps = split([5, 1, 2, 3, 4, 6, 7, 3], 3, 2)  # unsorted, repeated (two tickers share a day)
    assert [(s.train, s.test) for s in steps] == [((1, 2, 3), (4, 5)), ((3, 4, 5), (6, 7))]
    steps = split(list(range(10, 16)), 2, 3)
    assert [(s.train, s.test) for s in steps] == [((10, 11), (12, 13, 14)), ((13, 14), (15,))]
    for s in steps:
        assert max(s.train) < min(s.test)
    tested = [d for s in split(list(range(20)), 4, 1) for d in s.test]
    assert tested == list(range(4, 20))


def test_too_few_days_is_a_clear_error():
    with pytest.raises(WindowError, match="needs at least 4"):
        split([1, 2, 3], 3, 1)
    with pytest.raises(WindowError, match="at least 1"):
        split([1, 2, 3], 0, 1)


def test_choice_takes_the_first_of_equal_bests():
    assert choose([1.0, 3.0, 3.0, 2.0]) == 1
    assert choose([-5.0]) == 0
