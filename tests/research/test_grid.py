import pytest

from app import config
from app.cli import main
from app.research.grid import GridError, label, parse, settings, to_toml


def base():
    return config.load(None)


def test_values_are_typed_from_the_config_and_combined_in_a_fixed_order():
    axes = parse(["coordination.learner.fixed_share=0.01,0.05", "coordination.entry_threshold=0.3,0.5",
                  "coordination.contrarian=true,false", "coordination.horizons=[1,2],[1,2,4]"], base())
    assert [k for k, _ in axes] == sorted(k for k, _ in axes)
    assert dict(axes)["coordination.contrarian"] == [True, False]
    assert dict(axes)["coordination.horizons"] == [[1, 2], [1, 2, 4]]
    ss = settings(axes)
    assert len(ss) == 16
    assert label(ss[0]) == ("coordination.contrarian=true coordination.entry_threshold=0.3 "
                            "coordination.horizons=[1,2] coordination.learner.fixed_share=0.01")


@pytest.mark.parametrize("spec, words", [
    ("coordination.entry_treshold=0.3", "no such config key"),
    ("coordination=0.3", "is a section"),
    ("coordination.entry_threshold=0.3,abc", "not a float"),
    ("coordination.entry_threshold=1.5", "refused by the config"),
    ("coordination.max_contracts=1.5", "not a int"),
    ("coordination.contrarian=yes", "not a bool"),
    ("coordination.entry_threshold", "expected KEY=V1,V2"),
    ("coordination.entry_threshold=0.3,0.3", "repeated"),
    ("coordination.entry_threshold=0.3,", "empty value"),
])
def test_bad_grid_is_one_line_naming_the_key(spec, words):
    with pytest.raises(GridError) as err:
        parse([spec], base())
    assert words in str(err.value) and "\n" not in str(err.value)


def test_the_command_exits_2_with_one_line(tapes, capsys):
    assert main(["sweep", str(tapes), "--grid", "coordination.nope=1,2", "--jobs", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "coordination.nope" in err[0]


def test_same_key_twice_is_refused():
    with pytest.raises(GridError, match="given twice"):
        parse(["coordination.entry_threshold=0.3", "coordination.entry_threshold=0.5"], base())


def test_fragment_loads_and_changes_the_setting(tmp_path):
    s = (("coordination.entry_threshold", 0.55), ("coordination.learner.fixed_share", 0.05),
         ("coordination.horizons", [1, 3]), ("coordination.contrarian", False))
    p = tmp_path / "chosen.toml"
    p.write_text(to_toml(s, "a header\nof two lines"))
    cfg = config.load(p)
    assert cfg.coordination.entry_threshold == 0.55
    assert cfg.coordination.learner.fixed_share == 0.05
    assert cfg.coordination.horizons == [1, 3] and cfg.coordination.contrarian is False
    assert cfg.coordination.max_contracts == base().coordination.max_contracts  # the rest stays default


def test_too_few_days_exits_2_and_an_unreadable_tape_exits_3(tapes, tmp_path, capsys):
    assert main(["sweep", str(tapes), "--grid", "coordination.entry_threshold=0.3", "--train-days", "4"]) == 2
    assert "needs at least 5" in capsys.readouterr().err
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.csv").write_text("a;b;c\n1;2;3\n")
    assert main(["sweep", str(tapes), str(bad), "--grid", "coordination.entry_threshold=0.3"]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("sweep: tape not read:") and "broken.csv" in err[-1]
