"""The serving baseline: the same Scorer behind a bare FastAPI app on uvicorn (no Ray).

``python -m benchmarks.bare_app --port P --model DIR --feast CONFIG.json``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from payments_ml.feature_store.store import open_store
from payments_ml.serving.schemas import (
    BatchRequest,
    BatchScore,
    Score,
    Transaction,
    transaction_columns,
)
from payments_ml.serving.score_log import ScoreLog
from payments_ml.serving.scorer import Scorer
from payments_ml.training.model import FraudModel


def create_app(model: FraudModel, feast: dict[str, Any], scored: str) -> FastAPI:
    """The scorer's work per request, as the Serve app does it: online reads, today's
    append with the log's outbox record, the model; the same log thread beside it."""
    scorer = Scorer(model, open_store(feast), log=True)
    ScoreLog(scorer.backend.outbox(), scored)
    app = FastAPI()

    def score(transactions: list[Transaction]) -> list[dict[str, Any]]:
        return scorer.score(transaction_columns(transactions)).answers()

    @app.post("/score", response_model=Score)
    def score_one(transaction: Transaction) -> dict[str, Any]:
        return score([transaction])[0]

    @app.post("/score/batch", response_model=BatchScore)
    def score_batch(body: BatchRequest) -> dict[str, Any]:
        return {"results": score(body.transactions)}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--feast", required=True)
    parser.add_argument("--scored", required=True, help="folder of the scored-transaction log")
    args = parser.parse_args()
    feast = json.loads(Path(args.feast).read_text())
    app = create_app(FraudModel.load(Path(args.model)), feast, args.scored)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
