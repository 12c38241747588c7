"""The generator: catalogues, Zipf popularity, seasonality, scenarios, labels, determinism."""

from __future__ import annotations

import copy
import datetime as dt

import numpy as np
import pandas as pd
import pytest

from payments_ml.contracts import split_by_contract
from payments_ml.data_gen import generator as g

START = dt.date(2025, 6, 2)  # a Monday
N_DAYS = 28


@pytest.fixture(scope="module")
def default_world(base_params) -> g.World:
    return g.world_of(base_params)


@pytest.fixture(scope="module")
def four_weeks(default_world) -> pd.DataFrame:
    """Four weeks at the default size (10 000 customers, 2 000 merchants), about 320 k rows."""
    days = [START + dt.timedelta(days=i) for i in range(N_DAYS)]
    return pd.concat([g.generate_day(default_world, d) for d in days], ignore_index=True)


@pytest.fixture(scope="module")
def catalogues(base_params):
    customers = g.build_customers(base_params)
    return customers, g.build_cards(customers, base_params), g.build_merchants(base_params)


# -- catalogues -----------------------------------------------------------------------


def test_each_customer_holds_one_to_three_cards_with_one_primary(catalogues):
    customers, cards, _ = catalogues
    per_customer = cards.groupby("customer_id").size()
    assert per_customer.index.equals(pd.Index(customers["customer_id"]))
    assert per_customer.between(1, 3).all()
    assert (cards.groupby("customer_id")["is_primary"].sum() == 1).all()
    assert cards["card_id"].is_unique


def test_merchants_have_categories_and_every_city_has_a_store(catalogues, base_params):
    _, _, merchants = catalogues
    categories = base_params["merchants"]["categories"]
    assert set(merchants["category"]) <= set(categories)
    expected_mcc = merchants["category"].map({k: v[0] for k, v in categories.items()})
    assert (merchants["mcc"] == expected_mcc).all()
    stores = merchants[~merchants["online_only"]]
    assert set(stores["region"]) == set(range(base_params["n_regions"]))
    assert merchants.loc[merchants["online_only"], "lat"].isna().all()
    assert merchants["popularity"].sum() == pytest.approx(1.0)


def test_customer_profiles_vary(catalogues):
    customers, _, _ = catalogues
    assert customers["typical_amount"].gt(0).all()
    assert customers["tx_per_day"].quantile(0.9) > 2 * customers["tx_per_day"].quantile(0.1)
    assert set(customers["active_hour_shift"]) == {-2, -1, 0, 1, 2}


def test_too_few_merchants_for_the_cities_is_refused(base_params):
    params = copy.deepcopy(base_params) | {"n_merchants": 5, "n_regions": 10}
    with pytest.raises(ValueError, match=r"n_merchants \(5\) must be >= n_regions \(10\)"):
        g.build_merchants(params)


# -- volume, popularity, seasonality ----------------------------------------------------


def test_a_few_merchants_take_a_large_share(four_weeks, base_params):
    share = four_weeks["merchant_id"].value_counts(normalize=True)
    top_1_percent = share.iloc[: base_params["n_merchants"] // 100].sum()
    bottom_half = share.iloc[base_params["n_merchants"] // 2 :].sum()
    assert top_1_percent > 0.25, top_1_percent
    assert bottom_half < 0.10, bottom_half


def test_volume_matches_the_customers_rates(four_weeks, default_world):
    expected = sum(
        default_world.expected_daily_volume(START + dt.timedelta(i)) for i in range(N_DAYS)
    )
    assert len(four_weeks) == pytest.approx(expected, rel=0.03)


def test_nights_are_quiet_with_lunch_and_evening_peaks(four_weeks):
    weekdays = four_weeks[four_weeks["event_timestamp"].dt.dayofweek < 5]
    hourly = weekdays["event_timestamp"].dt.hour.value_counts(normalize=True).sort_index()
    night = hourly.loc[2:4].mean()
    assert night < 0.2 * hourly.loc[12:13].mean()
    assert hourly.loc[12] > hourly.loc[10]  # lunchtime peak
    assert hourly.loc[18:19].mean() > hourly.loc[15]  # evening peak


def test_weekends_start_later_and_sunday_is_quiet(four_weeks):
    ts = four_weeks["event_timestamp"]
    weekend = ts.dt.dayofweek >= 5
    morning = ts.dt.hour.between(6, 8)
    assert morning[weekend].mean() < 0.7 * morning[~weekend].mean()
    per_weekday = ts.dt.dayofweek.value_counts() / 4
    assert per_weekday[6] < 0.85 * per_weekday[4]  # Sunday below Friday
    assert per_weekday[5] > per_weekday[0]  # Saturday above Monday


def test_customers_shop_mostly_near_home(four_weeks, catalogues):
    customers, _, merchants = catalogues
    rows = four_weeks[~four_weeks["is_fraud"] & (four_weeks["channel"] == "pos")]
    home = rows["customer_id"].map(customers.set_index("customer_id")["home_region"])
    region = rows["merchant_id"].map(merchants.set_index("merchant_id")["region"])
    assert (home == region).mean() > 0.8


# -- fraud -----------------------------------------------------------------------------


def test_fraud_rate_is_near_the_target_and_follows_it(four_weeks, base_params):
    rate = four_weeks["is_fraud"].mean()
    assert 0.6 * base_params["fraud"]["rate"] < rate < 1.4 * base_params["fraud"]["rate"]
    doubled = copy.deepcopy(base_params)
    doubled["fraud"]["rate"] = 2 * base_params["fraud"]["rate"]
    world = g.world_of(doubled)
    days = [START + dt.timedelta(days=i) for i in range(N_DAYS)]
    doubled_rate = pd.concat([g.generate_day(world, d) for d in days])["is_fraud"].mean()
    assert 1.5 * rate < doubled_rate < 2.5 * rate


def test_every_fraud_names_its_scenario_and_genuine_rows_none(four_weeks):
    assert set(four_weeks["fraud_scenario"].dropna()) == set(g.SCENARIOS)
    assert four_weeks.loc[four_weeks["is_fraud"], "fraud_scenario"].notna().all()
    assert four_weeks.loc[~four_weeks["is_fraud"], "fraud_scenario"].isna().all()


def test_card_testing_is_bursts_of_small_online_amounts(four_weeks, default_world):
    rows = four_weeks[four_weeks["fraud_scenario"] == "card_testing"]
    assert (rows["channel"] == "ecom").all()
    tests = rows[rows["amount"] <= 4.0]
    assert len(tests) > 0.8 * len(rows)
    bursts = tests.groupby(["card_id", tests["event_timestamp"].dt.date])["event_timestamp"]
    assert (bursts.size() >= 3).mean() > 0.9
    assert ((bursts.max() - bursts.min()) < pd.Timedelta(hours=1)).mean() > 0.9
    weak = set(default_world.merch_id[default_world.vulnerable])
    assert tests["merchant_id"].isin(weak).all()


def test_compromised_merchant_cards_are_defrauded_weeks_after_the_visit(default_world, base_params):
    cfg = base_params["fraud"]["scenarios"]["compromised_merchant"]
    # About one skimmed store every other day at the default size: take the first.
    for origin in (START + dt.timedelta(days=i) for i in range(N_DAYS)):
        plan = pd.DataFrame(g.plan_fraud(default_world, origin, ("compromised_merchant",)))
        if len(plan):
            break
    visits, frauds = plan[~plan["is_fraud"]], plan[plan["is_fraud"]]
    assert len(visits) and len(frauds)
    # The skimming visits are genuine, at a few stores, on the origin day.
    assert visits["ts"].floordiv(g.NS_PER_DAY).eq(g.day_number(origin)).all()
    assert visits["merchant"].nunique() < len(visits) / 3
    # Every defrauded card was at a compromised store, and is used online weeks later.
    first_visit = visits.groupby("card_id")["ts"].min()
    assert frauds["card_id"].isin(first_visit.index).all()
    lag_days = (frauds["ts"] - frauds["card_id"].map(first_visit)) / g.NS_PER_DAY
    assert lag_days.min() >= cfg["lag_days"][0] - 1
    assert lag_days.max() <= cfg["lag_days"][1] + 3
    assert frauds["ecom"].all()


def test_compromised_merchant_frauds_land_in_the_days_generated(four_weeks):
    rows = four_weeks[four_weeks["fraud_scenario"] == "compromised_merchant"]
    earlier = four_weeks[~four_weeks["is_fraud"]].groupby("card_id")["event_timestamp"].min()
    seen_before = rows["card_id"].map(earlier) < rows["event_timestamp"]
    assert seen_before.mean() > 0.8  # the card was used genuinely before (at the skimmed store)


def test_account_takeover_is_large_new_and_often_at_night(four_weeks, catalogues):
    customers, _, merchants = catalogues
    rows = four_weeks[four_weeks["fraud_scenario"] == "account_takeover"]
    typical = rows["customer_id"].map(customers.set_index("customer_id")["typical_amount"])
    assert (rows["amount"] / typical).median() > 3
    home = rows["customer_id"].map(customers.set_index("customer_id")["home_region"])
    region = rows["merchant_id"].map(merchants.set_index("merchant_id")["region"])
    assert (home != region).all()  # online (region -1) or another city
    assert rows["event_timestamp"].dt.hour.lt(6).mean() > 0.4


def test_stolen_card_spree_is_fast_card_present_near_home(four_weeks, catalogues):
    customers, _, merchants = catalogues
    rows = four_weeks[four_weeks["fraud_scenario"] == "stolen_card_spree"]
    home = rows["customer_id"].map(customers.set_index("customer_id")["home_region"])
    region = rows["merchant_id"].map(merchants.set_index("merchant_id")["region"])
    assert (home == region).all()
    per_card = rows.groupby("card_id")["event_timestamp"]
    assert (per_card.size() >= 3).mean() > 0.8
    assert ((per_card.max() - per_card.min()) < pd.Timedelta(hours=6)).mean() > 0.8


def test_fraud_is_not_trivially_separable(four_weeks):
    fraud, genuine = four_weeks[four_weeks["is_fraud"]], four_weeks[~four_weeks["is_fraud"]]
    # Amount alone does not give it away: most frauds sit inside the genuine range ...
    assert (fraud["amount"] < genuine["amount"].quantile(0.95)).mean() > 0.5
    # ... and genuine customers also buy online and at night.
    assert (genuine["channel"] == "ecom").mean() > 0.05
    assert genuine["event_timestamp"].dt.hour.lt(6).mean() > 0.02


# -- labels ------------------------------------------------------------------------------


def test_labels_arrive_late_frauds_sooner_with_a_skew(four_weeks, base_params):
    labels = base_params["labels"]
    valid, quarantine = split_by_contract(four_weeks)  # the injected defects aside
    assert 0 < len(quarantine) < 0.001 * len(four_weeks)
    delay = (valid["label_available_at"] - valid["event_timestamp"]).dt.total_seconds() / 86400
    genuine, fraud = delay[~valid["is_fraud"]], delay[valid["is_fraud"]]
    assert (genuine == labels["standard_delay_days"]).all()
    assert fraud.min() >= 1 / 24
    assert fraud.max() <= labels["standard_delay_days"]
    assert fraud.median() == pytest.approx(labels["fraud_delay_median_days"], rel=0.35)
    assert fraud.mean() > fraud.median()  # right-skewed


# -- determinism ------------------------------------------------------------------------------


def test_same_parameters_give_identical_days(base_params, default_world):
    day = START + dt.timedelta(days=5)
    again = g.world_of(copy.deepcopy(base_params))
    pd.testing.assert_frame_equal(g.generate_day(default_world, day), g.generate_day(again, day))


def test_another_seed_gives_other_data(base_params, default_world):
    day = START + dt.timedelta(days=5)
    other = g.world_of(copy.deepcopy(base_params) | {"seed": base_params["seed"] + 1})
    a, b = g.generate_day(default_world, day), g.generate_day(other, day)
    assert len(a) != len(b) or not np.allclose(a["amount"], b["amount"], equal_nan=True)


def test_a_day_does_not_depend_on_the_days_generated_around_it(default_world):
    day = START + dt.timedelta(days=10)
    alone = g.generate_day(default_world, day)
    for other in (START, START + dt.timedelta(days=11)):
        g.generate_day(default_world, other)
    pd.testing.assert_frame_equal(alone, g.generate_day(default_world, day))
    assert alone["transaction_id"].str.startswith(f"tx-{day:%Y%m%d}-").all()
    assert (alone["event_date"] == day.isoformat()).all()
    assert (alone["event_timestamp"].dt.date == day).all()
    assert alone["event_timestamp"].is_monotonic_increasing


def test_corruption_injects_each_defect(base_params):
    params = copy.deepcopy(base_params) | {"corruption_rate": 0.01}
    day = g.generate_day(g.world_of(params), START)
    assert (day["amount"] <= 0).sum() > 0
    assert day["amount"].isna().sum() > 0
    assert day["transaction_id"].duplicated().sum() > 0
    assert (day["label_available_at"] < day["event_timestamp"]).sum() > 0
    clean = g.generate_day(g.world_of(copy.deepcopy(base_params) | {"corruption_rate": 0.0}), START)
    assert clean["transaction_id"].is_unique and clean["amount"].gt(0).all()


def test_times_are_whole_microseconds(four_weeks):
    """As the scoring API's ISO timestamps carry them: a replay then sees the same times."""
    for column in ("event_timestamp", "label_available_at"):
        ns = four_weeks[column].to_numpy("datetime64[ns]").view(np.int64)
        assert (ns % 1_000 == 0).all(), column
    burst = four_weeks[four_weeks["fraud_scenario"] == "card_testing"]
    assert len(burst) > 0  # the scenario whose seconds-apart steps were sub-microsecond


@pytest.mark.parametrize("side", ["left", "right"])
def test_sorted_lookup_gives_the_positions_of_a_binary_search(side):
    rng = np.random.default_rng(5)
    weights = 1.0 / (rng.permutation(5_000) + 1.0) ** 1.1
    edges = np.cumsum(weights) / weights.sum()
    edges[100:110] = edges[100]  # ties, and values on bucket bounds and on the edges
    lookup = g.SortedLookup.build(edges, 1.0, side=side)
    bounds = np.arange(len(lookup.starts)) / lookup.scale
    x = np.concatenate([rng.random(200_000), edges[:-1], bounds[:-1], [0.0, np.nextafter(1, 0)]])
    np.testing.assert_array_equal(lookup(x), np.searchsorted(edges, x, side=side))
    outside = np.array([-0.5, 1.0, 3.0])  # never drawn, still answered
    np.testing.assert_array_equal(lookup(outside), np.searchsorted(edges, outside, side=side))


def test_transaction_ids_are_the_day_and_the_zero_padded_row_number():
    ids = g.transaction_ids(dt.date(2025, 6, 11), np.array([0, 42, 9_999_999, 41]))
    assert ids.to_pylist() == [
        "tx-20250611-0000000",
        "tx-20250611-0000042",
        "tx-20250611-9999999",
        "tx-20250611-0000041",
    ]
    longer = g.transaction_ids(dt.date(2025, 6, 11), np.array([3, 12_345_678])).to_pylist()
    assert longer == ["tx-20250611-0000003", "tx-20250611-12345678"]
    assert g.transaction_ids(dt.date(2025, 6, 11), np.array([], dtype=np.int64)).to_pylist() == []
