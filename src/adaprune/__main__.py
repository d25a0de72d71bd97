import sys

from adaprune.cli.main import main

sys.exit(main())
