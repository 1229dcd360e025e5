import sys
from pathlib import Path

# The test-only algorithm(s) under tests/algorithms are importable as smalgos_<name>.
sys.path.insert(0, str(Path(__file__).parent / "algorithms"))
