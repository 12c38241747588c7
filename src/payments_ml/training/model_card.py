"""The registry description of a model version, in Markdown as the MLflow UI shows it.

It says on the version's page what a reader would otherwise dig out of tags and runs:
the data windows the version was trained and tested on, its test metrics beside the
baseline's and the champion's it was compared with, and whether it was promoted and why.
"""

from __future__ import annotations

from typing import Any

MISSING = "\u2013"  # a metric or count the run did not produce


def version_description(
    *,
    decision: dict[str, Any],
    metadata: dict[str, Any],
    thresholds: dict[str, float],
    metrics: dict[str, dict[str, float]],
    k: int,
    commit: str,
) -> str:
    """The version's description: decision, data windows, test metrics, thresholds.

    Args:
        decision: The promotion decision (``promoted``, ``reason``, ``metric``,
            ``champion_after``), as ``promotion_decision`` returns it.
        metadata: The model's split facts: ``fit_window``, ``valid_window``,
            ``gap_window``, ``test_window`` (first and last ISO day) and row counts.
        thresholds: The model's review and decline score thresholds.
        metrics: Test-window metrics of each compared model, one table column each
            (``{"v3": {...}, "baseline": {...}, "champion v2": {...}}``), keyed
            ``average_precision``, ``roc_auc``, ``card_precision_at_<k>``.
        k: Cards an investigator checks a day (card precision@k).
        commit: The git commit of the training code.
    """
    return "\n".join(
        [
            _headline(decision),
            "",
            *_windows(metadata),
            "",
            *_metrics_table(metrics, k, decision["metric"].removeprefix("test_")),
            "",
            _thresholds(thresholds),
            "",
            f"Training code: commit `{commit[:12]}`.",
        ]
    )


def _headline(decision: dict[str, Any]) -> str:
    if decision["promoted"]:
        return f"**Promoted to champion.** {decision['reason']}"
    return f"**Not promoted**: v{decision['champion_after']} stays champion. {decision['reason']}"


def _windows(metadata: dict[str, Any]) -> list[str]:
    def days(key: str) -> str:
        window = metadata.get(key)
        return f"{window[0]} to {window[1]}" if window else MISSING

    def rows(key: str) -> str:
        count = metadata.get(key)
        return MISSING if count is None else f"{count:,}"

    fraud_rate = metadata.get("test_fraud_rate")
    test_rows = rows("test_rows")
    if fraud_rate is not None:
        test_rows += f" ({100 * fraud_rate:.2f} % fraud)"
    return [
        "| window | days | rows |",
        "|---|---|---|",
        f"| train | {days('fit_window')} | {rows('train_rows')} |",
        f"| validation (early stopping, thresholds) | {days('valid_window')} | "
        f"{rows('valid_rows')} |",
        f"| gap (labels not known yet) | {days('gap_window')} | {MISSING} |",
        f"| test | {days('test_window')} | {test_rows} |",
    ]


def _metrics_table(metrics: dict[str, dict[str, float]], k: int, promotion: str) -> list[str]:
    names = {
        "average_precision": "average precision",
        "roc_auc": "ROC AUC",
        f"card_precision_at_{k}": f"card precision@{k}",
    }
    lines = [
        "Test window, same transactions for every model:",
        "",
        "| metric | " + " | ".join(metrics) + " |",
        "|---" * (len(metrics) + 1) + "|",
    ]
    for key, name in names.items():
        label = f"**{name}** (promotion)" if key == promotion else name
        values = [_number(column.get(key)) for column in metrics.values()]
        lines.append(f"| {label} | " + " | ".join(values) + " |")
    return lines


def _thresholds(thresholds: dict[str, float]) -> str:
    listed = ", ".join(
        f"{name} \u2265 {value:.4f}"
        for name, value in sorted(thresholds.items(), key=lambda item: item[1])
    )
    return f"Decision thresholds (chosen on the validation window): {listed}."


def _number(value: float | None) -> str:
    return MISSING if value is None else f"{value:.4f}"
