"""The synthetic payments world: entity catalogues and one day of transactions.

Everything here is plain numpy/pandas and deterministic: each random draw comes from a
generator seeded by ``(seed, stream, day)``, so a day depends only on the parameters and
its own date. Fraud that spans several days (a store skimmed today, its cards defrauded
weeks later) is planned from the day it *starts*; generating day D replays the plans of
the days before it, which keeps every day independent of the days actually generated.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

NS_PER_SECOND = 1_000_000_000
NS_PER_DAY = 86_400 * NS_PER_SECOND

# Independent random streams; never reuse a number for another purpose.
_CUSTOMERS, _CARDS, _MERCHANTS, _DAY, _FRAUD, _CORRUPT, _VULNERABLE = range(1, 8)

SCENARIOS = ("card_testing", "compromised_merchant", "account_takeover", "stolen_card_spree")
DEFECTS = ("non_positive_amount", "missing_amount", "duplicate_id", "label_before_event")


def _rng(seed: int, stream: int, day: int = 0, sub: int = 0) -> np.random.Generator:
    return np.random.default_rng([seed, stream, day, sub])


def day_number(day: dt.date) -> int:
    """Days since 1970-01-01 of ``day`` (the seed of its random draws, with the seed)."""
    return (day - dt.date(1970, 1, 1)).days


def _zipf_weights(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Popularity 1/rank^s with ranks shuffled over the entities, normalised to 1."""
    ranks = rng.permutation(n) + 1
    weights = 1.0 / ranks.astype(float) ** exponent
    return weights / weights.sum()


def build_customers(params: dict[str, Any]) -> pd.DataFrame:
    """Customers with a home city and a spending profile (amount, rate, active hours)."""
    cfg = params["customers"]
    n, n_regions = int(params["n_customers"]), int(params["n_regions"])
    if n < 1 or n_regions < 1:
        raise ValueError(f"n_customers and n_regions must be >= 1, got {n} and {n_regions}")
    rng = _rng(params["seed"], _CUSTOMERS)
    region_weights = _zipf_weights(n_regions, params["merchants"]["region_zipf_exponent"], rng)
    centres = _region_centres(params)
    region = rng.choice(n_regions, size=n, p=region_weights)
    rate_sigma = cfg["tx_per_day_sigma"]
    rate = cfg["tx_per_day_mean"] * np.exp(rng.normal(-(rate_sigma**2) / 2, rate_sigma, n))
    shifts = np.arange(-2, 3)
    return pd.DataFrame(
        {
            "customer_id": np.arange(1, n + 1, dtype=np.int64),
            "home_region": region.astype(np.int32),
            "home_lat": centres[region, 0] + rng.normal(0, 0.05, n),
            "home_lon": centres[region, 1] + rng.normal(0, 0.05, n),
            "typical_amount": np.round(
                cfg["amount_median"] * np.exp(rng.normal(0, cfg["amount_sigma"], n)), 2
            ),
            "tx_per_day": rate,
            "active_hour_shift": rng.choice(shifts, size=n, p=cfg["active_hour_shift_probs"]),
        }
    )


def _region_centres(params: dict[str, Any]) -> np.ndarray:
    rng = _rng(params["seed"], _CUSTOMERS, 1)
    n = int(params["n_regions"])
    return np.column_stack([rng.uniform(43.0, 51.0, n), rng.uniform(-4.0, 8.0, n)])


def build_cards(customers: pd.DataFrame, params: dict[str, Any]) -> pd.DataFrame:
    """One to three cards per customer; the first is the primary card."""
    cfg = params["customers"]
    rng = _rng(params["seed"], _CARDS)
    probs = cfg["cards_per_customer_probs"]
    per_customer = rng.choice(np.arange(1, len(probs) + 1), size=len(customers), p=probs)
    owner = np.repeat(customers["customer_id"].to_numpy(), per_customer)
    first = np.r_[0, np.cumsum(per_customer)[:-1]]
    is_primary = np.zeros(len(owner), dtype=bool)
    is_primary[first] = True
    return pd.DataFrame(
        {
            "card_id": np.arange(1, len(owner) + 1, dtype=np.int64) + 4_000_000_000,
            "customer_id": owner,
            "card_type": np.where(
                rng.random(len(owner)) < cfg["credit_card_share"], "credit", "debit"
            ),
            "is_primary": is_primary,
        }
    )


def build_merchants(params: dict[str, Any]) -> pd.DataFrame:
    """Merchants with a category (MCC), a city or online-only, a channel mix and Zipf popularity."""
    cfg = params["merchants"]
    n, n_regions = int(params["n_merchants"]), int(params["n_regions"])
    if n < n_regions:
        raise ValueError(
            f"n_merchants ({n}) must be >= n_regions ({n_regions}) so every city has a store"
        )
    rng = _rng(params["seed"], _MERCHANTS)
    names = list(cfg["categories"])
    table = np.array([cfg["categories"][c] for c in names], dtype=float)
    share = table[:, 1] / table[:, 1].sum()
    category = rng.choice(len(names), size=n, p=share)
    online_only = rng.random(n) < table[category, 3]
    region = rng.choice(
        n_regions, size=n, p=_zipf_weights(n_regions, cfg["region_zipf_exponent"], rng)
    )
    # Every city gets at least one store, so local shopping always has somewhere to go.
    online_only[:n_regions] = False
    region[:n_regions] = np.arange(n_regions)
    region = np.where(online_only, -1, region)
    centres = _region_centres(params)
    lat = np.where(online_only, np.nan, centres[region, 0] + rng.normal(0, 0.05, n))
    lon = np.where(online_only, np.nan, centres[region, 1] + rng.normal(0, 0.05, n))
    return pd.DataFrame(
        {
            "merchant_id": np.arange(1, n + 1, dtype=np.int64) + 700_000,
            "category": np.array(names, dtype=object)[category],
            "mcc": table[category, 0].astype(np.int32),
            "region": region.astype(np.int32),
            "lat": lat,
            "lon": lon,
            "online_only": online_only,
            "ecom_share": np.where(online_only, 1.0, table[category, 4]),
            "popularity": _zipf_weights(n, cfg["zipf_exponent"], rng),
        }
    )


@dataclass(frozen=True)
class SortedLookup:
    """``np.searchsorted(edges, x, side)`` for ``x`` in ``[0, top)``, through a table.

    A binary search per row over thousands of merchants' cumulative weights was the
    largest cost of a day (about 80 ns a row). The table holds where each bucket of width
    ``1 / scale`` starts among the edges: a row whose bucket holds no edge is answered by
    two array reads, the few others by the binary search. Exact, not approximate:
    ``scale`` is a power of two, so ``x * scale`` and the bucket bounds are computed
    without rounding.
    """

    edges: np.ndarray
    starts: np.ndarray  # np.searchsorted(edges, b / scale, side) for b in 0 .. top * scale
    scale: float
    side: str

    @classmethod
    def build(cls, edges: np.ndarray, top: float, side: str = "left") -> SortedLookup:
        """About eight buckets per edge: 7 % of the rows are searched (1 MB for 20 000)."""
        scale = 2.0 ** np.ceil(np.log2(max(8 * len(edges) / top, 1.0)))
        bounds = np.arange(int(np.ceil(top * scale)) + 1) / scale
        return cls(edges, np.searchsorted(edges, bounds, side=side), scale, side)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """The positions ``np.searchsorted(self.edges, x, self.side)`` gives."""
        scaled = x * self.scale
        bucket = scaled.astype(np.int64)
        outside = (scaled < 0) | (scaled >= len(self.starts) - 1)  # never drawn, but answered
        bucket[outside] = 0
        pos, upper = self.starts[bucket], self.starts[bucket + 1]
        unsure = np.flatnonzero((pos != upper) | outside)
        pos[unsure] = np.searchsorted(self.edges, x[unsure], side=self.side)
        return pos


@dataclass(frozen=True)
class World:
    """Catalogues as arrays plus the parameters: everything a day's generator needs."""

    params: dict[str, Any]
    cust_id: np.ndarray
    cust_region: np.ndarray
    cust_amount: np.ndarray
    cust_rate: np.ndarray
    cust_shift: np.ndarray
    cust_card_start: np.ndarray  # cards of customer i: card_ids[start[i] : start[i] + count[i]]
    cust_card_count: np.ndarray
    card_id: np.ndarray
    card_owner: np.ndarray  # index into the customer arrays
    region_cust_order: np.ndarray  # customer indices sorted by home region
    region_cust_start: np.ndarray  # len n_regions + 1
    merch_id: np.ndarray
    merch_mcc: np.ndarray
    merch_category: np.ndarray
    merch_factor: np.ndarray
    merch_ecom_share: np.ndarray
    merch_region: np.ndarray
    local_order: np.ndarray  # store merchants sorted by region, sampled by Zipf weight
    local_cum: SortedLookup  # region r's cumulative weights lie in [r, r + 1]
    global_cum: SortedLookup
    high_value: np.ndarray  # online-only merchants in resellable categories
    vulnerable: np.ndarray

    @classmethod
    def from_catalogues(
        cls,
        customers: pd.DataFrame,
        cards: pd.DataFrame,
        merchants: pd.DataFrame,
        params: dict[str, Any],
    ) -> World:
        """Index the catalogues for vectorised sampling."""
        n_regions = int(params["n_regions"])
        cust_index = pd.Index(customers["customer_id"])
        cards = cards.sort_values(["customer_id", "is_primary"], ascending=[True, False])
        owner = cust_index.get_indexer(cards["customer_id"])
        if (owner < 0).any():
            raise ValueError("cards reference customer_id values missing from customers")
        count = np.bincount(owner, minlength=len(customers))
        start = np.r_[0, np.cumsum(count)[:-1]]
        region = customers["home_region"].to_numpy()
        order = np.argsort(region, kind="stable")
        region_start = np.searchsorted(region[order], np.arange(n_regions + 1))

        return cls(
            params=params,
            cust_id=customers["customer_id"].to_numpy(np.int64),
            cust_region=region,
            cust_amount=customers["typical_amount"].to_numpy(float),
            cust_rate=customers["tx_per_day"].to_numpy(float),
            cust_shift=customers["active_hour_shift"].to_numpy(np.int64),
            cust_card_start=start,
            cust_card_count=count,
            card_id=cards["card_id"].to_numpy(np.int64),
            card_owner=owner,
            region_cust_order=order,
            region_cust_start=region_start,
            **_merchant_index(merchants, params),
        )

    # -- sampling helpers -------------------------------------------------------------
    def expected_daily_volume(self, day: dt.date) -> float:
        """Expected genuine transactions on ``day`` (drives the fraud volume)."""
        factor = self.params["seasonality"]["weekday_volume"][day.weekday()]
        return float(self.cust_rate.sum() * factor)

    def local_merchants(self, region: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Zipf-weighted store in each given city."""
        pos = self.local_cum(region + u * (1 - 1e-12))
        return self.local_order[np.minimum(pos, len(self.local_order) - 1)]

    def any_merchants(self, u: np.ndarray) -> np.ndarray:
        """Zipf-weighted merchant anywhere, online-only included."""
        return np.minimum(self.global_cum(u), len(self.global_cum.edges) - 1)

    def primary_card(self, cust: np.ndarray) -> np.ndarray:
        return self.card_id[self.cust_card_start[cust]]

    def amounts(self, median: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
        return np.maximum(np.round(median * np.exp(rng.normal(0, sigma, len(median))), 2), 0.01)


def _hours(profile: list[float], n: int, rng: np.random.Generator) -> np.ndarray:
    cdf = np.cumsum(profile, dtype=float)
    return SortedLookup.build(cdf / cdf[-1], 1.0, side="right")(rng.random(n))


def _night_hours(n: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 6, n)


def generate_genuine(world: World, day: dt.date) -> Rows:
    """Ordinary spending of every customer on ``day`` with daily and weekly seasonality."""
    p = world.params
    season, cust_cfg = p["seasonality"], p["customers"]
    rng = _rng(p["seed"], _DAY, day_number(day))
    n_per = rng.poisson(world.cust_rate * season["weekday_volume"][day.weekday()])
    cust = np.repeat(np.arange(len(world.cust_id)), n_per)
    n = len(cust)
    profile = season["hourly_weekend" if day.weekday() >= 5 else "hourly_weekday"]
    hour = (_hours(profile, n, rng) + world.cust_shift[cust]) % 24
    ts = (
        _day_start_ns(day)
        + hour * 3600 * NS_PER_SECOND
        + rng.integers(0, 3600 * 1000, n) * 1_000_000
    )
    # Mostly the primary card; u^2 skews the pick towards index 0.
    card_pick = (rng.random(n) ** 2 * world.cust_card_count[cust]).astype(np.int64)
    card = world.card_id[world.cust_card_start[cust] + card_pick]
    local = rng.random(n) < cust_cfg["home_share"]
    u = rng.random(n)
    # Each lookup only for the rows that use it (a binary search per row is the cost).
    merchant = np.empty(n, dtype=np.int64)
    merchant[local] = world.local_merchants(world.cust_region[cust[local]], u[local])
    merchant[~local] = world.any_merchants(u[~local])
    amount = world.amounts(
        world.cust_amount[cust] * world.merch_factor[merchant], season["amount_sigma"], rng
    )
    ecom = rng.random(n) < world.merch_ecom_share[merchant]
    return _frame(
        ts=ts, cust=cust, card=card, merchant=merchant, amount=amount, ecom=ecom, scenario=None
    )


def _day_start_ns(day: dt.date) -> int:
    return day_number(day) * NS_PER_DAY


Rows = dict[str, np.ndarray]
"""A batch of generated rows as aligned numpy columns (pandas is too slow for tiny batches)."""


def _frame(
    *,
    ts: np.ndarray,
    cust: np.ndarray,
    card: np.ndarray,
    merchant: np.ndarray,
    amount: np.ndarray,
    ecom: np.ndarray,
    scenario: str | None,
) -> Rows:
    n = len(ts)
    return {
        "ts": np.asarray(ts, dtype=np.int64),
        "cust": np.asarray(cust, dtype=np.int64),
        "card_id": np.asarray(card, dtype=np.int64),
        "merchant": np.asarray(merchant, dtype=np.int64),
        "amount": np.asarray(amount, dtype=float),
        "ecom": np.asarray(ecom, dtype=bool),
        "is_fraud": np.full(n, scenario is not None),
        # Index into SCENARIOS, -1 for genuine rows (strings only when the day is built).
        "scenario": np.full(n, -1 if scenario is None else SCENARIOS.index(scenario), np.int8),
    }


def _concat(batches: list[Rows]) -> Rows:
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def _take(rows: Rows, index: np.ndarray) -> Rows:
    return {k: v[index] for k, v in rows.items()}


def _event_counts(
    world: World, day: dt.date, scenario: str, tx_per_event: float, rng: np.random.Generator
) -> int:
    fraud = world.params["fraud"]
    weight = fraud["scenarios"][scenario]["weight"]
    total_weight = sum(s["weight"] for s in fraud["scenarios"].values())
    target_tx = fraud["rate"] / (1 - fraud["rate"]) * world.expected_daily_volume(day)
    return int(rng.poisson(target_tx * weight / total_weight / tx_per_event))


def _mean(bounds: list[float]) -> float:
    return (bounds[0] + bounds[1]) / 2


def plan_fraud(world: World, origin: dt.date, scenarios: tuple[str, ...] = SCENARIOS) -> Rows:
    """Every row caused by the fraud that starts on ``origin``, whatever day it lands on.

    Each scenario draws from its own stream seeded by the origin day alone, so any later
    day can replay one scenario's plan identically without computing the others.
    """
    p = world.params
    day0 = _day_start_ns(origin)
    frames = []
    for name in scenarios:
        rng = _rng(p["seed"], _FRAUD, day_number(origin), SCENARIOS.index(name))
        frames.append(_PLANNERS[name](world, p["fraud"]["scenarios"][name], origin, day0, rng))
    return _concat(frames)


def _horizon_days(params: dict[str, Any], scenario: str) -> int:
    """How many days after its origin a scenario can still put rows."""
    if scenario == "compromised_merchant":
        return int(params["fraud"]["scenarios"][scenario]["lag_days"][1]) + 4
    return 2


def _within_event(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Running sum of ``values`` restarted at each event (events have ``counts`` rows)."""
    total = np.cumsum(values)
    first = np.cumsum(counts) - counts
    return total - np.repeat(np.r_[0.0, total][first], counts)


def _random_cards(world: World, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    idx = rng.integers(0, len(world.card_id), n)
    return world.card_id[idx], world.card_owner[idx]


def _card_testing(
    world: World, cfg: dict, origin: dt.date, day0: int, rng: np.random.Generator
) -> Rows:
    per_event = _mean(cfg["tests"]) + cfg["cash_out_probability"]
    n_events = _event_counts(world, origin, "card_testing", per_event, rng)
    card, cust = _random_cards(world, n_events, rng)
    start = (
        day0
        + _night_hours(n_events, rng) * 3600 * NS_PER_SECOND
        + rng.integers(0, 3600, n_events) * NS_PER_SECOND
    )
    n_tests = rng.integers(cfg["tests"][0], cfg["tests"][1] + 1, n_events)
    ev = np.repeat(np.arange(n_events), n_tests)
    # Tests hit one or two weak merchants of the event, seconds apart.
    shop = world.vulnerable[rng.integers(0, len(world.vulnerable), (n_events, 2))]
    step = _within_event(rng.exponential(cfg["gap_seconds"], len(ev)) * NS_PER_SECOND, n_tests)
    tests = _frame(
        ts=start[ev] + step.astype(np.int64),
        cust=cust[ev],
        card=card[ev],
        merchant=shop[ev, rng.integers(0, 2, len(ev))],
        amount=np.round(rng.uniform(*cfg["test_amount"], len(ev)), 2),
        ecom=np.ones(len(ev), bool),
        scenario="card_testing",
    )
    cash = np.flatnonzero(rng.random(n_events) < cfg["cash_out_probability"])
    cash_out = _frame(
        ts=start[cash] + rng.integers(1 * 3600, 24 * 3600, len(cash)) * NS_PER_SECOND,
        cust=cust[cash],
        card=card[cash],
        merchant=world.high_value[rng.integers(0, len(world.high_value), len(cash))],
        amount=world.amounts(np.full(len(cash), cfg["cash_out_amount_median"]), 0.6, rng),
        ecom=np.ones(len(cash), bool),
        scenario="card_testing",
    )
    return _concat([tests, cash_out])


def _compromised_merchant(
    world: World, cfg: dict, origin: dt.date, day0: int, rng: np.random.Generator
) -> Rows:
    per_event = _mean(cfg["victims"]) * cfg["exploited_share"] * _mean(cfg["tx_per_card"])
    n_events = _event_counts(world, origin, "compromised_merchant", per_event, rng)
    stores = world.local_merchants(
        rng.integers(0, len(world.region_cust_start) - 1, n_events), rng.random(n_events)
    )
    n_victims = rng.integers(cfg["victims"][0], cfg["victims"][1] + 1, n_events)
    ev = np.repeat(np.arange(n_events), n_victims)
    region = world.merch_region[stores[ev]]
    lo, hi = world.region_cust_start[region], world.region_cust_start[region + 1]
    has_customers = hi > lo
    ev, lo, hi = ev[has_customers], lo[has_customers], hi[has_customers]
    cust = world.region_cust_order[lo + (rng.random(len(ev)) * (hi - lo)).astype(np.int64)]
    card = world.primary_card(cust)
    # The skimming itself: genuine purchases at the compromised store in opening hours.
    visit_ts = day0 + rng.integers(8 * 3600, 20 * 3600, len(ev)) * NS_PER_SECOND
    visits = _frame(
        ts=visit_ts,
        cust=cust,
        card=card,
        merchant=stores[ev],
        amount=world.amounts(world.cust_amount[cust] * world.merch_factor[stores[ev]], 0.6, rng),
        ecom=np.zeros(len(ev), bool),
        scenario=None,
    )
    # Weeks later the dump is sold and a share of the cards is used online.
    lag = rng.integers(cfg["lag_days"][0], cfg["lag_days"][1] + 1, n_events)
    exploited = np.flatnonzero(rng.random(len(ev)) < cfg["exploited_share"])
    n_tx = rng.integers(cfg["tx_per_card"][0], cfg["tx_per_card"][1] + 1, len(exploited))
    victim = np.repeat(exploited, n_tx)
    first = day0 + (lag[ev[exploited]] + rng.integers(0, 3, len(exploited))) * NS_PER_DAY
    first = first + rng.integers(0, 86_400, len(exploited)) * NS_PER_SECOND
    offsets = rng.integers(0, 3 * 3600, len(victim)) * NS_PER_SECOND
    frauds = _frame(
        ts=np.repeat(first, n_tx) + offsets,
        cust=cust[victim],
        card=card[victim],
        merchant=world.high_value[rng.integers(0, len(world.high_value), len(victim))],
        amount=world.amounts(np.full(len(victim), cfg["amount_median"]), 0.8, rng),
        ecom=np.ones(len(victim), bool),
        scenario="compromised_merchant",
    )
    return _concat([visits, frauds])


def _account_takeover(
    world: World, cfg: dict, origin: dt.date, day0: int, rng: np.random.Generator
) -> Rows:
    n_events = _event_counts(world, origin, "account_takeover", _mean(cfg["tx"]), rng)
    # Active customers are more attractive (and more exposed) targets.
    weights = np.cumsum(world.cust_rate) / world.cust_rate.sum()
    cust = np.minimum(np.searchsorted(weights, rng.random(n_events)), len(weights) - 1)
    card = world.card_id[world.cust_card_start[cust] + rng.integers(0, world.cust_card_count[cust])]
    night = rng.random(n_events) < cfg["night_probability"]
    hour = np.where(night, _night_hours(n_events, rng), rng.integers(0, 24, n_events))
    start = day0 + hour * 3600 * NS_PER_SECOND + rng.integers(0, 3600, n_events) * NS_PER_SECOND
    n_tx = rng.integers(cfg["tx"][0], cfg["tx"][1] + 1, n_events)
    ev = np.repeat(np.arange(n_events), n_tx)
    offsets = rng.integers(0, 4 * 3600, len(ev)) * NS_PER_SECOND
    # New merchants for the customer: resellable goods online, or a store in another city.
    online = rng.random(len(ev)) < 0.7
    n_regions = len(world.region_cust_start) - 1
    far_region = (
        world.cust_region[cust[ev]] + rng.integers(1, max(n_regions, 2), len(ev))
    ) % n_regions
    merchant = np.where(
        online,
        world.high_value[rng.integers(0, len(world.high_value), len(ev))],
        world.local_merchants(far_region, rng.random(len(ev))),
    )
    median = (
        world.cust_amount[cust[ev]]
        * cfg["amount_factor_median"]
        * np.sqrt(world.merch_factor[merchant])
    )
    return _frame(
        ts=start[ev] + offsets,
        cust=cust[ev],
        card=card[ev],
        merchant=merchant,
        amount=world.amounts(median, 0.7, rng),
        ecom=online | (rng.random(len(ev)) < world.merch_ecom_share[merchant]),
        scenario="account_takeover",
    )


def _stolen_card_spree(
    world: World, cfg: dict, origin: dt.date, day0: int, rng: np.random.Generator
) -> Rows:
    n_events = _event_counts(world, origin, "stolen_card_spree", _mean(cfg["tx"]), rng)
    card, cust = _random_cards(world, n_events, rng)
    start = day0 + rng.integers(9 * 3600, 22 * 3600, n_events) * NS_PER_SECOND
    n_tx = rng.integers(cfg["tx"][0], cfg["tx"][1] + 1, n_events)
    ev = np.repeat(np.arange(n_events), n_tx)
    step = _within_event(rng.exponential(cfg["gap_minutes"] * 60, len(ev)) * NS_PER_SECOND, n_tx)
    merchant = world.local_merchants(world.cust_region[cust[ev]], rng.random(len(ev)))
    return _frame(
        ts=start[ev] + step.astype(np.int64),
        cust=cust[ev],
        card=card[ev],
        merchant=merchant,
        amount=world.amounts(
            np.full(len(ev), cfg["amount_median"]) * np.sqrt(world.merch_factor[merchant]), 0.6, rng
        ),
        ecom=np.zeros(len(ev), bool),
        scenario="stolen_card_spree",
    )


def world_of(params: dict[str, Any]) -> World:
    """The world ``params`` describes: its customers, their cards and the merchants (what
    the data_gen pipeline's first nodes build, in one process)."""
    customers = build_customers(params)
    return World.from_catalogues(
        customers, build_cards(customers, params), build_merchants(params), params
    )


def generate_days(world: World, start: dt.date, n_days: int) -> pd.DataFrame:
    """All transactions of ``n_days`` days from ``start``, in one process (tests and
    benchmarks; the pipeline generates runs of days in Ray tasks)."""
    days = [generate_day(world, start + dt.timedelta(days=i)) for i in range(n_days)]
    return pd.concat(days, ignore_index=True)


def generate_day(world: World, day: dt.date) -> pd.DataFrame:
    """All transactions of one UTC day, in the contract's columns, sorted by time."""
    return generate_day_table(world, day).to_pandas()


def generate_day_table(world: World, day: dt.date) -> pa.Table:
    """:func:`generate_day` as Arrow, built without pandas: the columns and types that
    ``contracts.to_arrow(generate_day(world, day))`` has, value for value."""
    p = world.params
    frames = [generate_genuine(world, day)]
    start = _day_start_ns(day)
    horizon = {s: _horizon_days(p, s) for s in SCENARIOS}
    for back in range(max(horizon.values()), -1, -1):
        active = tuple(s for s in SCENARIOS if horizon[s] >= back)
        plan = plan_fraud(world, day - dt.timedelta(days=back), active)
        frames.append(_take(plan, (plan["ts"] >= start) & (plan["ts"] < start + NS_PER_DAY)))
    rows = _concat(frames)
    return _to_contract(world, _take(rows, _time_order(rows)), day)


def _time_order(rows: Rows) -> np.ndarray:
    """``np.lexsort((amount, merchant, card_id, ts))``: the day's row order.

    Sorting by time alone is many times faster than the four-key lexsort, and times
    rarely tie: only the runs of equal times are ordered by the other keys, with the
    original position as the last key (lexsort is stable).
    """
    ts = rows["ts"]
    order = np.argsort(ts)
    sorted_ts = ts[order]
    tied = np.flatnonzero(sorted_ts[1:] == sorted_ts[:-1])
    if len(tied):
        at = np.union1d(tied, tied + 1)  # positions (in time order) inside a run of ties
        idx = np.sort(order[at])
        keys = (idx, rows["amount"][idx], rows["merchant"][idx], rows["card_id"][idx], ts[idx])
        order[at] = idx[np.lexsort(keys)]
    return order


def _utc_micros(ns: np.ndarray) -> np.ndarray:
    """UTC times to the microsecond: what an authorisation log records, and what ISO
    timestamps in the scoring API carry (Python datetimes stop at microseconds)."""
    return np.asarray(ns, dtype=np.int64) // 1_000 * 1_000


def _to_contract(world: World, rows: Rows, day: dt.date) -> pa.Table:
    p = world.params
    n = len(rows["ts"])
    rng = _rng(p["seed"], _FRAUD, day_number(day), 99)
    labels = p["labels"]
    standard = labels["standard_delay_days"] * NS_PER_DAY
    fraud_delay = labels["fraud_delay_median_days"] * np.exp(
        rng.normal(0, labels["fraud_delay_sigma"], n)
    )
    fraud_delay = np.clip(fraud_delay * NS_PER_DAY, 3600 * NS_PER_SECOND, standard).astype(np.int64)
    is_fraud, ts, merchant = rows["is_fraud"], rows["ts"], rows["merchant"]
    event = _utc_micros(ts)
    bad = _Defects(
        seq=np.arange(n),
        amount=rows["amount"].copy(),
        label=_utc_micros(ts + np.where(is_fraud, fraud_delay, standard)),
    )
    _corrupt(bad, event, p["corruption_rate"], _rng(p["seed"], _CORRUPT, day_number(day)))
    code = rows["scenario"]
    return pa.table(
        {
            "transaction_id": transaction_ids(day, bad.seq),
            "event_timestamp": _timestamps(event),
            "customer_id": world.cust_id[rows["cust"]],
            "card_id": rows["card_id"],
            "merchant_id": world.merch_id[merchant],
            "amount": pa.array(bad.amount, from_pandas=True),  # NaN is null, as from pandas
            "mcc": world.merch_mcc[merchant],
            # An empty day's channel has type null, as pandas' empty object column gives.
            "channel": _CHANNELS.take(pa.array(rows["ecom"].astype(np.int8))) if n else pa.nulls(0),
            "is_fraud": is_fraud,
            "fraud_scenario": _SCENARIO_NAMES.take(pa.array(code, mask=code < 0)),
            "label_available_at": _timestamps(bad.label),
            "event_date": pa.repeat(pa.scalar(day.isoformat(), pa.string()), n),
        }
    )


def transaction_ids(day: dt.date, seq: np.ndarray) -> pa.Array:
    """``tx-20250611-0000042``: the day and the row's number, zero-padded to 7 digits.

    Written as bytes by numpy (fixed width up to 10 million rows a day): half the time of
    pyarrow's cast, pad and join, which take over beyond that.
    """
    prefix = np.frombuffer(f"tx-{day:%Y%m%d}-".encode(), np.uint8)
    n = len(seq)
    if n and seq.max() >= 10**7:
        padded = pc.utf8_lpad(pc.cast(pa.array(seq), pa.string()), 7, "0")
        return pc.binary_join_element_wise(f"tx-{day:%Y%m%d}", padded, "-")
    chars = np.empty((n, len(prefix) + 7), np.uint8)
    chars[:, : len(prefix)] = prefix
    rest = seq.astype(np.int32)
    for digit in range(chars.shape[1] - 1, len(prefix) - 1, -1):
        chars[:, digit] = rest % 10 + ord("0")
        rest //= 10
    offsets = np.arange(n + 1, dtype=np.int32) * chars.shape[1]
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(chars))


_CHANNELS = pa.array(["pos", "ecom"])
_SCENARIO_NAMES = pa.array(SCENARIOS)


def _timestamps(micros: np.ndarray) -> pa.Array:
    return pa.array(micros.view("datetime64[ns]"), pa.timestamp("ns", tz="UTC"))


@dataclass
class _Defects:
    """The columns a defect can change: sequence numbers of the ids, amounts, label times."""

    seq: np.ndarray
    amount: np.ndarray
    label: np.ndarray


def _corrupt(cols: _Defects, event: np.ndarray, rate: float, rng: np.random.Generator) -> None:
    """Give a few rows the defects real feeds have, so the contract and quarantine get exercised."""
    n = len(cols.seq)
    n_bad = int(rng.binomial(n, rate)) if rate > 0 and n > 1 else 0
    if not n_bad:
        return
    rows = rng.choice(np.arange(1, n), size=min(n_bad, n - 1), replace=False)
    kinds = rng.integers(0, len(DEFECTS), len(rows))
    # In draw order: a duplicate id copies its predecessor's id as it stands then.
    for row, kind in zip(rows, kinds, strict=True):
        defect = DEFECTS[kind]
        if defect == "non_positive_amount":
            cols.amount[row] = -cols.amount[row]
        elif defect == "missing_amount":
            cols.amount[row] = np.nan
        elif defect == "duplicate_id":
            cols.seq[row] = cols.seq[row - 1]
        else:
            cols.label[row] = event[row] - 3600 * NS_PER_SECOND


_PLANNERS = {
    "card_testing": _card_testing,
    "compromised_merchant": _compromised_merchant,
    "account_takeover": _account_takeover,
    "stolen_card_spree": _stolen_card_spree,
}


def _merchant_index(merchants: pd.DataFrame, params: dict[str, Any]) -> dict[str, np.ndarray]:
    """The merchant fields of a `World`: attributes, and cumulative popularity weights
    for sampling (per region for local shops, over all merchants for the rest)."""
    n_regions = int(params["n_regions"])
    categories = params["merchants"]["categories"]
    factor = merchants["category"].map({k: v[2] for k, v in categories.items()}).to_numpy()
    weight = merchants["popularity"].to_numpy()
    m_region = merchants["region"].to_numpy()
    stores = np.flatnonzero(m_region >= 0)
    local_order = stores[np.lexsort((stores, m_region[stores]))]
    local_cum = np.empty(len(local_order))
    for r in range(n_regions):
        sel = slice(*np.searchsorted(m_region[local_order], [r, r + 1]))
        w = np.cumsum(weight[local_order[sel]])
        local_cum[sel] = r + w / w[-1] if len(w) else r
    online_only = merchants["online_only"].to_numpy()
    hv_categories = set(params["fraud"]["high_value_categories"])
    high_value = np.flatnonzero(online_only & merchants["category"].isin(hv_categories).to_numpy())
    # Tiny worlds may have no online shop: fraud then falls back to any merchant.
    online = np.flatnonzero(online_only) if online_only.any() else np.arange(len(merchants))
    vuln_rng = _rng(params["seed"], _VULNERABLE)
    share = params["fraud"]["scenarios"]["card_testing"]["vulnerable_merchant_share"]
    n_vuln = min(len(online), max(3, int(round(share * len(online)))))
    return {
        "merch_id": merchants["merchant_id"].to_numpy(np.int64),
        "merch_mcc": merchants["mcc"].to_numpy(np.int32),
        "merch_category": merchants["category"].to_numpy(object),
        "merch_factor": factor.astype(float),
        "merch_ecom_share": merchants["ecom_share"].to_numpy(float),
        "merch_region": m_region,
        "local_order": local_order,
        "local_cum": SortedLookup.build(local_cum, n_regions),
        "global_cum": SortedLookup.build(np.cumsum(weight) / weight.sum(), 1.0),
        "high_value": high_value if len(high_value) else online,
        "vulnerable": np.sort(vuln_rng.choice(online, size=n_vuln, replace=False)),
    }
