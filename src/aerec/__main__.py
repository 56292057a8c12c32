import sys

from aerec.cli import main

sys.exit(main())
