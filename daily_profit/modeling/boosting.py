"""Where training's XGBoost fits run: in this process, or on a Dask cluster.

Every booster ``train`` fits (scale, mean, quantile, breach; search folds, cross-fit and final
refits) is built and trained through one ``Fitter``, so a training run is either entirely local
or entirely on the cluster, never a mix:

- ``LocalFitter``: ``xgb.QuantileDMatrix`` and ``xgb.train`` in this process (the default);
- ``DaskFitter``: ``xgboost.dask`` against a ``distributed.Client``. Each matrix's rows are cut
  into one partition per worker and placed on that worker, so the histograms are built where
  the rows are and only their summaries travel; the booster comes back to this process, which
  predicts with it as with a local one.

Both get the same parameters, rounds, early stopping, weights and histogram bins. The models
are equivalent, not identical: the distributed fit merges per-worker quantile sketches into its
histogram cuts and draws its row subsamples per worker, so the trees differ a little (what
``daily_profit_tests/modeling/test_boosting.py`` measures). The one parameter not passed
through is ``nthread``: on the cluster each worker uses the threads it was started with
(``dask worker --nthreads``), which is what a host dedicated to training is for.

``dask`` and ``distributed`` are imported only when a scheduler is configured: the local path
does not pay their import.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import xgboost as xgb

if TYPE_CHECKING:
    import dask.array as da
    from distributed import Client

# How long a run waits for the scheduler to have a worker before it fails: a cluster being
# (re)started gets a minute, a cluster without workers fails the run instead of hanging it.
WAIT_FOR_WORKERS_S = 60.0


class Fitter(Protocol):
    """Builds training matrices and trains boosters on them, somewhere."""

    def matrix(
        self,
        x: np.ndarray,
        label: np.ndarray,
        weight: np.ndarray | None,
        threads: int,
        max_bin: int,
        ref: Any = None,
    ) -> Any:
        """A matrix with its histogram cuts (``ref``: the training matrix whose cuts a
        validation matrix reuses)."""
        ...

    def train(
        self,
        params: dict[str, Any],
        dtrain: Any,
        rounds: int,
        evals: Sequence[tuple[Any, str]],
        early_stopping: int | None,
    ) -> xgb.Booster:
        """A booster trained here or elsewhere, usable for prediction in this process."""
        ...

    def describe(self) -> dict[str, Any]:
        """Where the fits ran, for the training run's description."""
        ...


class LocalFitter:
    """Today's single-process fit."""

    def matrix(
        self,
        x: np.ndarray,
        label: np.ndarray,
        weight: np.ndarray | None,
        threads: int,
        max_bin: int,
        ref: Any = None,
    ) -> xgb.QuantileDMatrix:
        return xgb.QuantileDMatrix(
            x, label=label, weight=weight, nthread=threads, max_bin=max_bin, ref=ref
        )

    def train(
        self,
        params: dict[str, Any],
        dtrain: Any,
        rounds: int,
        evals: Sequence[tuple[Any, str]],
        early_stopping: int | None,
    ) -> xgb.Booster:
        return xgb.train(
            params,
            dtrain,
            num_boost_round=rounds,
            evals=list(evals),
            early_stopping_rounds=early_stopping,
            verbose_eval=False,
        )

    def describe(self) -> dict[str, Any]:
        return {"backend": "local"}


LOCAL = LocalFitter()


class DaskFitter:
    """Fits through ``xgboost.dask`` on the cluster behind ``client``."""

    def __init__(self, client: Client, scheduler_address: str) -> None:
        self.client = client
        self.scheduler_address = scheduler_address
        self.workers_seen: set[str] = set()

    def _spread(self, arrays: Sequence[np.ndarray]) -> list[da.Array]:
        """The arrays (same number of rows) as dask arrays with one row block per worker,
        block i of every array placed on worker i.

        Scattered rather than embedded in the task graph: the graph would carry the whole
        matrix through the scheduler, which dask warns against beyond a few megabytes.
        """
        import dask.array as da

        workers = sorted(self.client.scheduler_info(n_workers=-1)["workers"])
        rows = arrays[0].shape[0]
        n = max(1, min(len(workers), rows))
        bounds = np.linspace(0, rows, n + 1).astype(int)
        blocks: list[list[da.Array]] = [[] for _ in arrays]
        for i in range(n):
            lo, hi = bounds[i], bounds[i + 1]
            pieces = [a[lo:hi] for a in arrays]
            # hash=False: two equal pieces (a block of zero labels) must not share one key,
            # which would leave the second worker without its block.
            futures = self.client.scatter(pieces, workers=[workers[i]], hash=False)
            for j, (future, piece) in enumerate(zip(futures, pieces, strict=True)):
                blocks[j].append(da.from_delayed(future, shape=piece.shape, dtype=piece.dtype))
            self.workers_seen.add(workers[i])
        return [da.concatenate(b) for b in blocks]

    def matrix(
        self,
        x: np.ndarray,
        label: np.ndarray,
        weight: np.ndarray | None,
        threads: int,
        max_bin: int,
        ref: Any = None,
    ) -> Any:
        import xgboost.dask as dxgb

        arrays = [x, label] if weight is None else [x, label, weight]
        spread = self._spread(arrays)
        return dxgb.DaskQuantileDMatrix(
            self.client,
            spread[0],
            spread[1],
            weight=spread[2] if weight is not None else None,
            max_bin=max_bin,
            ref=ref,
        )

    def train(
        self,
        params: dict[str, Any],
        dtrain: Any,
        rounds: int,
        evals: Sequence[tuple[Any, str]],
        early_stopping: int | None,
    ) -> xgb.Booster:
        import xgboost.dask as dxgb

        remote = {k: v for k, v in params.items() if k != "nthread"}
        out = dxgb.train(
            self.client,
            remote,
            dtrain,
            num_boost_round=rounds,
            evals=list(evals),
            early_stopping_rounds=early_stopping,
            verbose_eval=False,
        )
        booster: xgb.Booster = out["booster"]
        # Predictions in this process use this process's thread budget, not a worker's.
        if "nthread" in params:
            booster.set_param({"nthread": params["nthread"]})
        return booster

    def describe(self) -> dict[str, Any]:
        return {
            "backend": "dask",
            "scheduler": self.scheduler_address,
            "workers": len(self.workers_seen),
        }


@contextmanager
def open_fitter(scheduler_address: str | None) -> Iterator[Fitter]:
    """The local fitter when no scheduler is configured, else a client of that scheduler for
    the duration of the block (closed after it, the cluster's data with it).

    A scheduler that cannot be reached, or has no worker within ``WAIT_FOR_WORKERS_S``, fails
    here: a run configured for the cluster never quietly trains somewhere else.
    """
    if not scheduler_address:
        yield LOCAL
        return
    from distributed import Client

    # The default client: xgboost.dask looks one up even when it is handed this one.
    with Client(scheduler_address) as client:
        client.wait_for_workers(1, timeout=WAIT_FOR_WORKERS_S)
        yield DaskFitter(client, scheduler_address)
