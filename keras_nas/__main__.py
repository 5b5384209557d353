"""`python -m keras_nas`: the `keras-nas` command."""

import sys

from keras_nas.cli import main

if __name__ == "__main__":
    sys.exit(main())
