"""python -m compat_matrix: see compat_matrix/runner.py."""
import sys

from compat_matrix.runner import main

sys.exit(main())
