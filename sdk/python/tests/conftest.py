"""The SDK's tests import the package from this checkout (sdk/python) and
the examples from sdk/python/examples, whatever the working directory."""
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "examples"))
sys.path.insert(0, str(HERE))  # stub.py
