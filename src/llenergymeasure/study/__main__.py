"""``python -m llenergymeasure.study``: one isolated run in a runner's interpreter.

The study (or ``llem run``) starts this in another virtual environment, such as
``.venv-vllm``; it reads its spec as JSON on stdin (see ``study.child.main``).
"""

import sys

from llenergymeasure.study.child import main

if __name__ == "__main__":
    sys.exit(main())
