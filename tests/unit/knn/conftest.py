"""Make the algorithm packages importable before the root pyproject lists their folders."""
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
for folder in ("kmeans", "pca", "knn"):
    path = str(ROOT / "containers" / folder)
    if path not in sys.path:
        sys.path.insert(0, path)
