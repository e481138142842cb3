"""Before any test: take the real MNIST folder out of the environment (realmnist.py says why)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import realmnist  # noqa: E402,F401
