"""A deterministic synthetic restaurant chain in the RMS replica schema, with its ground truth.

    from synthetic import ChainConfig, generate, seed_database
    chain = generate(ChainConfig(restaurants=5, days=120, seed=42))   # in memory: .tables, .ground_truth
    summary = seed_database("postgresql://postgres@127.0.0.1:5432/db", cfg)  # streams into PostgreSQL

What is planted is documented in docs/synthetic.md.
"""

from synthetic.config import ChainConfig
from synthetic.generator import SyntheticChain, generate
from synthetic.ground_truth import GroundTruth
from synthetic.loader import seed_database

__all__ = ["ChainConfig", "GroundTruth", "SyntheticChain", "generate", "seed_database"]
