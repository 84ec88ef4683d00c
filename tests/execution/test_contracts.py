import pytest

from app import config
from app.config import ConfigError
from app.execution.contracts import ContractSpec, MissingContractError, require_spec, spec_for


@pytest.mark.parametrize("ticker, root, tick, point_value", [
    ("WDOZ26", "WDO", 0.5, 10.0),
    ("DOLF27", "DOL", 0.5, 50.0),
    ("WINFUT", "WIN", 5.0, 0.2),
    ("INDZ26", "IND", 5.0, 1.0),
])
def test_the_four_b3_futures_have_specs_by_root(ticker, root, tick, point_value):
    spec = require_spec(ticker, config.load(None).execution)
    assert (spec.root, spec.tick, spec.point_value) == (root, tick, point_value)
    assert spec.fee > 0.0 and spec == spec_for(ticker, config.load(None).execution)


def test_mini_and_full_contracts_cost_in_proportion_to_b3s_contract_factor():
    ex = config.load(None).execution
    assert require_spec("DOLZ26", ex).fee == 4 * require_spec("WDOZ26", ex).fee  # WDO factor 0.25
    assert require_spec("INDZ26", ex).fee == 5 * require_spec("WINZ26", ex).fee  # WIN factor 0.2


def test_a_ticker_without_a_contract_is_one_config_error_line_naming_the_section_to_add():
    with pytest.raises(MissingContractError) as err:
        require_spec("PETR4", config.load(None).execution)
    assert isinstance(err.value, ConfigError)
    assert str(err.value) == ("tape ticker PETR4: no contract for root 'PET'; add [execution.contracts.PET] with "
                              "tick, point_value and fee to config.toml")
    assert "\n" not in str(err.value)


def test_a_contract_added_in_config_is_found():
    cfg = config.load(overrides={"execution.contracts.PET": {"tick": 0.01, "point_value": 1.0, "fee": 0.0}})
    assert require_spec("PETR4", cfg.execution) == ContractSpec("PET", 0.01, 1.0, 0.0)


def test_round_trip_cost_is_spread_plus_two_fees_plus_two_slippages():
    wdo = ContractSpec("WDO", tick=0.5, point_value=10.0, fee=1.0)
    assert wdo.round_trip_cost() == 5.0 + 2.0
    assert wdo.round_trip_cost(spread=1.0, slippage_ticks=1.0) == 10.0 + 2.0 + 10.0
