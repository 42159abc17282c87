"""The top anomalies of an analysis are the same whatever the chunking and the chunks' order:
highest score first, ties by lower row number, even when most rows tie."""

import numpy as np
import pandas as pd
import pytest

from server.analysis import analyse_chunks
from utils.readers import ParsedRecords
from utils.schema import SEVERITIES
from utils.scoring import ScoredRecords


def chunk(rows: np.ndarray, scores: np.ndarray, threshold: float) -> tuple:
    features = pd.DataFrame({"duration": rows.astype(float)}, index=pd.Index(rows))
    flagged = scores > threshold
    scored = ScoredRecords(
        anomaly_score=scores, is_anomaly=flagged, confidence=np.zeros(len(rows)),
        severity=np.where(flagged, SEVERITIES[2], SEVERITIES[0]).astype(object),
        votes=np.zeros((len(rows), 2), dtype=bool), threshold=threshold)
    return ParsedRecords(features=features, labels=None, difficulty=None, numbered=True), scored


@pytest.mark.parametrize("limit", [1, 5, 40, 1000])
@pytest.mark.parametrize("pieces", [1, 3, 17])
def test_top_rows_do_not_depend_on_the_chunking_or_the_chunks_order(limit, pieces):
    rng = np.random.RandomState(pieces + limit)
    scores = rng.choice([0.5, 2.0, 3.0, 3.5], size=300)  # many ties, a third not flagged
    expected = [i for i in np.lexsort((np.arange(300), -scores)) if scores[i] > 1.0][:limit]
    order = rng.permutation(300)  # rows arrive out of order, as a large Zeek log's do
    parts = [chunk(rows, scores[rows], 1.0) for rows in np.array_split(order, pieces)]
    analysis = analyse_chunks(parts, limit)
    assert analysis.top_index.tolist() == expected
    assert analysis.top_features["duration"].tolist() == [float(i) for i in expected]
    assert analysis.severity[expected].tolist() == [SEVERITIES[2]] * len(expected)
    assert (analysis.severity[scores <= 1.0] == SEVERITIES[0]).all()
