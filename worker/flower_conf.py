# Flower's configuration file (``--conf``, executed by Flower at start): see worker/flower_api.py.
from worker.flower_api import answer_argument_errors

answer_argument_errors()
