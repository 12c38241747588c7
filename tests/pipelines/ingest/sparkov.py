"""Transactions in the layout of the Kaggle "Sparkov" simulated credit-card files.

``fraudTrain.csv`` / ``fraudTest.csv`` (kartik2112/fraud-detection on Kaggle, made with
github.com/namebrandon/Sparkov_Data_Generation): an unnamed index column, then
trans_date_trans_time, cc_num, merchant, category, amt, first, last, gender, street, city,
state, zip, lat, long, city_pop, job, dob, trans_num, unix_time, merch_lat, merch_long,
is_fraud. Its ``unix_time`` is shifted (2012 for 2019 rows), as generated here.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CATEGORIES = [
    "gas_transport",
    "grocery_pos",
    "home",
    "shopping_pos",
    "kids_pets",
    "shopping_net",
    "entertainment",
    "food_dining",
    "personal_care",
    "health_fitness",
    "misc_pos",
    "misc_net",
    "grocery_net",
    "travel",
]
_NAMES = ["Rippin", "Kub", "Mann", "Heller", "Gutmann", "Zieme", "Lind", "Buckridge", "Kiehn"]
_FIRST = ["Jennifer", "Stephanie", "Edward", "Jeremy", "Tyler", "Jessica", "Daniel", "Mary"]
_JOBS = ["Psychologist, counselling", "Special educational needs teacher", "Designer, ceramics"]
# Sparkov's unix_time lags trans_date_trans_time by exactly this much.
UNIX_TIME_SHIFT_S = (pd.Timestamp("2019-01-01") - pd.Timestamp("2012-01-01")).total_seconds()


def sparkov_transactions(
    n_rows: int,
    *,
    n_customers: int = 1000,
    n_merchants: int = 800,
    start: str = "2019-01-01",
    n_days: int = 30,
    fraud_rate: float = 0.006,
    seed: int = 0,
) -> pd.DataFrame:
    """``n_rows`` transactions in the Sparkov layout, sorted by time (same seed, same rows)."""
    rng = np.random.default_rng(seed)
    seconds = np.sort(rng.integers(0, n_days * 86_400, n_rows))
    ts = np.datetime64(start, "s") + seconds.astype("timedelta64[s]")
    customer = rng.integers(0, n_customers, n_rows)
    merchant = rng.integers(0, n_merchants, n_rows)
    cc_num = rng.integers(10**11, 5 * 10**18, n_customers)  # 12 to 19 digits, as in Sparkov
    merchant_names = np.array(
        [
            f"fraud_{_NAMES[i % 9]}{i // 9}, {_NAMES[(i * 7) % 9]} and {_NAMES[(i * 5) % 9]}"
            for i in range(n_merchants)
        ],
        dtype=object,
    )
    lat = rng.uniform(25, 48, n_customers).round(4)
    lon = rng.uniform(-120, -70, n_customers).round(4)
    is_fraud = rng.random(n_rows) < fraud_rate
    amount = np.round(np.exp(rng.normal(3.6, 1.1, n_rows)) + 1, 2)
    amount[is_fraud] = np.round(amount[is_fraud] * 8, 2)
    stamps = np.datetime_as_string(ts, unit="s")
    frame = pd.DataFrame(
        {
            "trans_date_trans_time": pd.Series(stamps).str.replace("T", " ", regex=False),
            "cc_num": cc_num[customer],
            "merchant": merchant_names[merchant],
            "category": np.array(CATEGORIES, dtype=object)[merchant % len(CATEGORIES)],
            "amt": amount,
            "first": np.array(_FIRST, dtype=object)[customer % len(_FIRST)],
            "last": np.array(_NAMES, dtype=object)[customer % len(_NAMES)],
            "gender": np.where(customer % 2 == 0, "F", "M").astype(object),
            "street": [f"{c} Perry Cove" for c in customer],
            "city": np.array(["Moravian Falls", "Orient", "Malad City"], dtype=object)[
                customer % 3
            ],
            "state": np.array(["NC", "WA", "ID"], dtype=object)[customer % 3],
            "zip": 28654 + customer % 50,
            "lat": lat[customer],
            "long": lon[customer],
            "city_pop": 3495 + customer,
            "job": np.array(_JOBS, dtype=object)[customer % len(_JOBS)],
            "dob": "1988-03-09",
            "trans_num": [f"{x:016x}{y:016x}" for x, y in rng.integers(0, 2**63, (n_rows, 2))],
            "unix_time": ts.astype(np.int64) - int(UNIX_TIME_SHIFT_S),
            "merch_lat": (lat[customer] + rng.normal(0, 0.5, n_rows)).round(6),
            "merch_long": (lon[customer] + rng.normal(0, 0.5, n_rows)).round(6),
            "is_fraud": is_fraud.astype(np.int64),
        }
    )
    return frame


# Defects written into the sample, and the check each one must be quarantined under.
SAMPLE_DEFECTS = {
    "null_customer": "customer_id: null",
    "negative_amount": "amount: greater_than(0)",
    "duplicate_id": "transaction_id: duplicate",
    "bad_timestamp": "event_timestamp: not a timestamp (iso)",
    "unknown_label": "is_fraud: not in label.true_values/false_values",
}


def sparkov_sample(n_rows: int = 400, seed: int = 7) -> pd.DataFrame:
    """The committed fixture: a small Sparkov-layout file with one row per known defect.

    40 card holders and 25 merchants over 21 days from 2019-01-01, 4 % fraud; rows
    10, 20, 30, 40 and 50 carry the defects of :data:`SAMPLE_DEFECTS`, in that order
    (the duplicate repeats row 5's ``trans_num`` later in time, so row 5 stays valid).
    """
    frame = sparkov_transactions(
        n_rows, n_customers=40, n_merchants=25, n_days=21, fraud_rate=0.04, seed=seed
    ).astype(object)
    frame.loc[10, "cc_num"] = None
    frame.loc[20, "amt"] = -12.5
    frame.loc[30, "trans_num"] = frame.loc[5, "trans_num"]
    frame.loc[40, "trans_date_trans_time"] = "2019-13-45 25:61:00"
    frame.loc[50, "is_fraud"] = "maybe"
    return frame
